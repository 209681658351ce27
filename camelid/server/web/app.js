// camelid chat: a small client for the Ollama-compatible API of the same origin
// (GET /api/tags, POST /api/chat streaming NDJSON). Model output is only ever set via textContent.
"use strict";

const MODEL_KEY = "camelid.model";

const $ = (id) => document.getElementById(id);
const els = {
  model: $("model"),
  system: $("system"),
  temperature: $("temperature"),
  numPredict: $("num-predict"),
  messages: $("messages"),
  form: $("chat-form"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  newChat: $("new-chat"),
  stats: $("stats"),
  error: $("error"),
};

let turns = []; // [{role, content}] of the conversation so far, without the system prompt
let controller = null; // AbortController of the stream in progress, or null

// ---- small UI helpers ----

function showError(text) {
  els.error.textContent = text;
  els.error.hidden = !text;
}

function setBusy(busy) {
  els.send.disabled = busy || !els.model.value;
  els.stop.disabled = !busy;
  els.model.disabled = busy || els.model.options.length === 0 || !els.model.value;
  document.body.classList.toggle("busy", busy);
}

function nearBottom() {
  const m = els.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 40;
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = `message ${role}`;
  div.textContent = text;
  els.messages.append(div);
  els.messages.scrollTop = els.messages.scrollHeight;
  return div;
}

function autoGrow() {
  els.prompt.style.height = "auto";
  els.prompt.style.height = `${els.prompt.scrollHeight}px`;
}

function formatStats(final) {
  const parts = [];
  const count = final.eval_count;
  const seconds = (final.eval_duration || 0) / 1e9;
  if (count && seconds > 0) parts.push(`${(count / seconds).toFixed(1)} tokens/s`);
  if (count) parts.push(`${count} tokens`);
  if (final.done_reason === "length") parts.push("stopped at the token limit");
  return parts.join(" · ");
}

// ---- API ----

async function errorMessage(response) {
  const body = await response.text();
  try {
    const parsed = JSON.parse(body);
    if (parsed && parsed.error) return parsed.error;
  } catch {
    // not JSON: fall through
  }
  return body.trim() || `HTTP ${response.status} ${response.statusText}`;
}

// Yield one parsed object per NDJSON line of a streaming response body.
async function* readNdjson(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) yield JSON.parse(line);
      }
    }
    if (buffer.trim()) yield JSON.parse(buffer);
  } finally {
    reader.releaseLock();
  }
}

async function loadModels() {
  try {
    const response = await fetch("/api/tags");
    if (!response.ok) throw new Error(await errorMessage(response));
    const { models = [] } = await response.json();
    els.model.replaceChildren();
    for (const m of models) {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = m.name;
      els.model.append(option);
    }
    if (models.length === 0) {
      const option = document.createElement("option");
      option.value = "";
      option.textContent = "No models installed";
      els.model.append(option);
      showError("No models installed. Pull one first, e.g. `camelid pull smollm2:135m`.");
    } else {
      const saved = localStorage.getItem(MODEL_KEY);
      if (saved && models.some((m) => m.name === saved)) els.model.value = saved;
    }
  } catch (err) {
    els.model.replaceChildren(new Option("Models unavailable", ""));
    showError(`Could not list models: ${err.message}`);
  }
  setBusy(false);
}

function buildOptions() {
  const options = {};
  const temperature = els.temperature.value.trim();
  const numPredict = els.numPredict.value.trim();
  if (temperature !== "") options.temperature = Number(temperature);
  if (numPredict !== "") options.num_predict = Number.parseInt(numPredict, 10);
  return options;
}

async function sendMessage() {
  const text = els.prompt.value.trim();
  if (!text || controller || !els.model.value) return;

  showError("");
  els.stats.textContent = "";
  els.prompt.value = "";
  autoGrow();

  const conversation = turns; // "New chat" replaces `turns`; this turn belongs to this one
  const userTurn = { role: "user", content: text };
  conversation.push(userTurn);
  const userDiv = addMessage("user", text);
  const replyDiv = addMessage("assistant", "");
  replyDiv.classList.add("pending");
  const reply = { role: "assistant", content: "" };

  const system = els.system.value.trim();
  const messages = system ? [{ role: "system", content: system }, ...conversation] : [...conversation];

  controller = new AbortController();
  setBusy(true);
  try {
    const response = await fetch("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: els.model.value, messages, stream: true, options: buildOptions() }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    if (!response.body) throw new Error("The server sent no response body.");

    for await (const chunk of readNdjson(response.body)) {
      if (chunk.error) throw new Error(chunk.error);
      const piece = chunk.message?.content;
      if (piece) {
        const follow = nearBottom();
        reply.content += piece;
        replyDiv.textContent = reply.content;
        replyDiv.classList.remove("pending");
        if (follow) els.messages.scrollTop = els.messages.scrollHeight;
      }
      if (chunk.done) els.stats.textContent = formatStats(chunk);
    }
  } catch (err) {
    if (conversation !== turns) {
      // "New chat" was pressed while streaming: this turn is gone already.
    } else if (err.name === "AbortError") {
      replyDiv.classList.add("stopped");
      els.stats.textContent = "Stopped.";
    } else {
      showError(err.message || String(err));
    }
  } finally {
    controller = null;
    replyDiv.classList.remove("pending");
    if (reply.content) {
      conversation.push(reply); // keep answers, partial ones included
    } else {
      // Nothing came back: forget this turn and, unless the chat was cleared, give the text back to retry.
      conversation.splice(conversation.indexOf(userTurn), 1);
      userDiv.remove();
      replyDiv.remove();
      if (conversation === turns && !els.prompt.value) els.prompt.value = text;
      autoGrow();
    }
    setBusy(false);
    els.prompt.focus();
  }
}

function newChat() {
  if (controller) controller.abort();
  turns = [];
  els.messages.replaceChildren();
  els.stats.textContent = "";
  showError("");
  els.prompt.focus();
}

// ---- wiring ----

els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
els.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
});
els.prompt.addEventListener("input", autoGrow);
els.stop.addEventListener("click", () => controller?.abort());
els.newChat.addEventListener("click", newChat);
els.model.addEventListener("change", () => localStorage.setItem(MODEL_KEY, els.model.value));

loadModels();
els.prompt.focus();
