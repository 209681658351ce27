"""Readers of Whisper weights in each format, all producing the openai/whisper state_dict layout."""
