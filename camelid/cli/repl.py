"""The interactive chat of `camelid run`, with Ollama's slash commands and \"\"\" multi-line input."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from camelid.cli.output import format_stats, stream
from camelid.errors import CamelidError

HELP = """Available Commands:
  /set parameter NAME VALUE   Set a parameter (temperature, top_k, top_p, min_p, num_predict, seed, ...)
  /set system TEXT            Set the system message
  /show info                  Show details for this model
  /show parameters            Show the parameters set in this session
  /show system                Show the system message
  /show template              Show the chat template
  /clear                      Clear the session context
  /bye                        Exit
  /?, /help                   Help for a command

Use \"\"\" to begin a multi-line message."""


class Repl:
    """Reads lines from `read` (input() by default), streams answers to `out`, keeps the conversation."""

    def __init__(self, llm: Any, system: str | None = None, verbose: bool = False,
                 read: Callable[[str], str] = input, out: TextIO = sys.stdout) -> None:
        self.llm, self.verbose, self.read, self.out = llm, verbose, read, out
        self.system = system
        self.messages: list[dict[str, str]] = []
        self.parameters: dict[str, Any] = {}

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def loop(self) -> None:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        while True:
            try:
                line = self.read_message()
            except EOFError:
                self.say("")
                return
            except KeyboardInterrupt:
                self.say("\nUse Ctrl + d or /bye to exit.")
                continue
            if line is None:
                continue
            if line.startswith("/"):
                if self.command(line) == "bye":
                    return
                continue
            self.answer(line)

    def read_message(self) -> str | None:
        line = self.read(">>> ")
        if not line.strip():
            return None
        if line.lstrip().startswith('"""'):
            parts = [line.lstrip()[3:]]
            while not parts[-1].rstrip().endswith('"""'):
                parts.append(self.read("... "))
            parts[-1] = parts[-1].rstrip()[:-3]
            return "\n".join(parts).strip("\n")
        return line.strip()

    def command(self, line: str) -> str | None:
        words = line.split(maxsplit=3)
        head = words[0].lower()
        if head in ("/bye", "/exit"):
            return "bye"
        if head in ("/?", "/help"):
            self.say(HELP)
        elif head == "/clear":
            self.messages.clear()
            self.say("Cleared session context")
        elif head == "/set" and len(words) >= 2:
            self.set(words)
        elif head == "/show" and len(words) >= 2:
            self.show(words[1].lower())
        else:
            self.say(f"Unknown command '{line.strip()}'. Type /? for help")
        return None

    def set(self, words: list[str]) -> None:
        what = words[1].lower()
        if what == "system":
            self.system = line_rest(words, 2)
            self.say("Set system message.")
        elif what == "parameter" and len(words) == 4:
            name, value = words[2], words[3]
            try:
                self.llm.options.merged({name: value})
            except CamelidError as err:
                self.say(f"Couldn't set parameter: {err}")
                return
            self.parameters[name] = value
            self.say(f"Set parameter '{name}' to '{value}'")
        else:
            self.say("Usage: /set parameter NAME VALUE  |  /set system TEXT")

    def show(self, what: str) -> None:
        if what == "info":
            info = self.llm.info()
            self.say("  Model")
            for key in ("architecture", "parameters", "context_length", "embedding_length", "quantization"):
                self.say(f"    {key.replace('_', ' '):<20}{info.get(key)}")
        elif what == "parameters":
            self.say(json.dumps(self.parameters, indent=2) if self.parameters else "No parameters set.")
        elif what == "system":
            self.say(self.system or "No system message was specified for this model.")
        elif what == "template":
            self.say(self.llm.template or self.llm.chat_template or "No template was specified for this model.")
        else:
            self.say(f"Unknown /show argument '{what}'. Try info, parameters, system or template.")

    def answer(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
        conversation = ([{"role": "system", "content": self.system}] if self.system else []) + self.messages
        answer = None
        try:
            answer = self.llm.chat(conversation, **self.parameters)
            reply = stream(answer, self.out)
        except KeyboardInterrupt:  # Ctrl-C stops this answer, keeps the session
            if answer is None:
                self.messages.pop()
                return
            answer.close()
            reply = answer.text
        except CamelidError as err:
            self.messages.pop()
            self.say(f"Error: {err}")
            return
        self.say("\n")
        self.messages.append({"role": "assistant", "content": reply})
        if self.verbose and answer.stats is not None:
            print(format_stats(answer.stats), file=sys.stderr)


def line_rest(words: list[str], start: int) -> str:
    return " ".join(words[start:]).strip().strip('"')
