"""Speech endpoints on the same server: OpenAI's `/v1/audio/transcriptions` and `/v1/audio/translations`
(multipart), and whisper.cpp's `/inference`. The speech side is mounted beside the LLM side, not through it."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from camelid.errors import BadRequest

router = APIRouter()
FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


def speech_model_name(requested: str | None) -> str | None:
    """OpenAI clients name `whisper-1`: that, or nothing, means camelid's default Whisper model."""
    if not requested or requested.startswith("whisper-") or requested == "whisper":
        return None
    return requested


async def run_transcription(upload: UploadFile, model: str | None, **options: Any) -> Any:
    from camelid.speech.service import load_speech_model

    speech = await asyncio.to_thread(load_speech_model, speech_model_name(model))
    # the upload as Starlette spooled it (to disk beyond 1 MB): decoded from the file, never read whole into memory
    return await asyncio.to_thread(speech.transcribe, upload.file, name=upload.filename or "the upload", **options)


def render(transcript: Any, response_format: str, task: str) -> Response:
    from camelid.speech.writers import get_writer

    if response_format not in FORMATS:
        raise BadRequest(f"response_format must be one of {', '.join(FORMATS)}")
    if response_format == "json":
        return JSONResponse({"text": transcript.text.strip()})
    if response_format == "text":
        return PlainTextResponse(transcript.text.strip() + "\n")
    if response_format == "verbose_json":
        body = transcript.to_dict()
        body.update(task=task, duration=transcript.duration, text=transcript.text.strip())
        return JSONResponse(body)
    media = "application/x-subrip" if response_format == "srt" else "text/vtt"
    return Response(get_writer(response_format).to_string(transcript), media_type=media)


def decoding_options(language: str | None, prompt: str | None, temperature: float | None, task: str,
                     granularities: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {"task": task, "language": None if language in (None, "", "auto") else language}
    if prompt:
        options["initial_prompt"] = prompt
    if temperature is not None and temperature > 0:
        options["temperature"] = temperature
    if granularities and "word" in granularities:
        options["word_timestamps"] = True
    return options


FileField = Annotated[UploadFile, File()]
Text = Annotated[str | None, Form()]
Number = Annotated[float | None, Form()]


@router.post("/v1/audio/transcriptions")
async def transcriptions(file: FileField, model: Text = None, language: Text = None, prompt: Text = None,
                         response_format: Annotated[str, Form()] = "json", temperature: Number = None,
                         granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
                         ) -> Response:
    options = decoding_options(language, prompt, temperature, "transcribe", granularities)
    return render(await run_transcription(file, model, **options), response_format, "transcribe")


@router.post("/v1/audio/translations")
async def translations(file: FileField, model: Text = None, prompt: Text = None,
                       response_format: Annotated[str, Form()] = "json", temperature: Number = None) -> Response:
    options = decoding_options(None, prompt, temperature, "translate", None)
    return render(await run_transcription(file, model, **options), response_format, "translate")


@router.post("/inference")
async def inference(file: FileField, temperature: Number = None, response_format: Annotated[str, Form()] = "json",
                    language: Text = None, translate: Text = None, prompt: Text = None,
                    model: Text = None) -> Response:
    """whisper.cpp server's endpoint."""
    task = "translate" if str(translate).lower() in ("1", "true", "yes", "on") else "transcribe"
    options = decoding_options(language, prompt, temperature, task, None)
    return render(await run_transcription(file, model, **options), response_format, task)
