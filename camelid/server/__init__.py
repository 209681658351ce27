"""The HTTP server: Ollama API, OpenAI API translators, extras and the web page."""
