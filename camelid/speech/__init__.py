"""Speech to text: Whisper models (CTranslate2, Hugging Face, openai-whisper and whisper.cpp weights), audio decoding
and log-mel features, decoding, transcription and subtitle writers. A sibling of the LLM side: it never imports the
LLM engine."""
