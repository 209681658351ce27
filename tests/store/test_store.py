"""The store itself: names, blobs, manifests, list/cp/rm, Modelfile create and show, Ollama store import."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from camelid.errors import BadModelFile, BadRequest, UnknownModel
from camelid.store import manifest as mt
from camelid.store.blobs import ModelStore, StoreError
from camelid.store.create import copy, create, import_ollama
from camelid.store.names import ModelName
from camelid.store.resolve import resolve
from camelid.store.show import show

BAD_NAMES = ["../../etc/passwd", "/etc/passwd", "a/b/c/d", "m:", ":tag", ".hidden", "m:../x", "x y", "",
             "ns/../m", "m\\x", "~/m", "a" * 81, "m:" + "t" * 81]


@pytest.mark.parametrize("text", BAD_NAMES)
def test_bad_names_are_refused(text: str) -> None:
    with pytest.raises(BadRequest, match="model name"):
        ModelName.parse(text)


def test_names_take_ollamas_defaults() -> None:
    name = ModelName.parse("smollm2")
    assert (name.host, name.namespace, name.model, name.tag) == ("registry.ollama.ai", "library", "smollm2", "latest")
    assert str(name) == "smollm2:latest"
    hf = ModelName.parse("hf.co/org/repo:Q4_K_M")
    assert hf.manifest_path.parts == ("hf.co", "org", "repo", "Q4_K_M") and str(hf) == "hf.co/org/repo:Q4_K_M"
    assert ModelName.parse("localhost:5000/ns/m:t").host == "localhost:5000"


def test_blob_is_checked_and_appears_whole(store: ModelStore, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(StoreError, match="does not match"):
        store.add_file(source, expected=wrong)
    assert not store.has_blob(wrong) and not list(store.blobs.glob(".incoming-*"))
    digest, size = store.add_file(source, expected="sha256:" + hashlib.sha256(data).hexdigest())
    assert size == len(data) and store.blob_path(digest).read_bytes() == data


def test_full_disk_is_one_clear_error(store: ModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import io

    class FullDisk(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StoreError, match="not enough disk space"):
        store.add_stream(FullDisk(), what="model.gguf")
    assert not list(store.blobs.glob(".incoming-*"))


def test_manifest_needs_its_blobs(store: ModelStore) -> None:
    layer = mt.Layer(mt.MODEL, "sha256:" + "a" * 64, 10)
    config_digest, config_size = store.add_bytes(b"{}")
    manifest = mt.Manifest(mt.Layer(mt.CONFIG_MEDIA_TYPE, config_digest, config_size), (layer,))
    with pytest.raises(StoreError, match="missing"):
        store.write(ModelName.parse("m"), manifest)
    assert store.entries() == []


def test_create_from_gguf_list_show_copy_remove(store: ModelStore, tiny_gguf, tmp_path: Path) -> None:
    tiny_gguf("weights.gguf")
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text('FROM ./weights.gguf\nPARAMETER temperature 0.25\nPARAMETER stop "<end>"\n'
                         'PARAMETER stop "User:"\nSYSTEM """Be brief.\nBe kind."""\nMESSAGE user Hi\n'
                         "MESSAGE assistant Hello!\nLICENSE MIT\n")
    created = create("tiny:v1", modelfile.read_text(), base_dir=tmp_path, store=store)
    assert str(created) == "tiny:v1"
    [entry] = store.entries()
    raw = store.manifest_file(created).read_bytes()
    assert entry.manifest_digest == hashlib.sha256(raw).hexdigest()
    manifest = json.loads(raw)
    assert manifest["mediaType"] == mt.MANIFEST_MEDIA_TYPE and manifest["schemaVersion"] == 2
    kinds = [layer["mediaType"] for layer in manifest["layers"]]
    assert kinds == [mt.MODEL, mt.SYSTEM, mt.PARAMS, mt.MESSAGES, mt.LICENSE]
    for layer in [manifest["config"], *manifest["layers"]]:  # every blob is named by its content
        blob = store.blobs / layer["digest"].replace(":", "-")
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == layer["digest"]
        assert blob.stat().st_size == layer["size"]
    config = json.loads(store.blob_path(manifest["config"]["digest"]).read_bytes())
    assert config["model_format"] == "gguf" and config["model_family"] == "llama"

    resolved = resolve("tiny:v1", store)
    assert resolved.parameters == {"temperature": 0.25, "stop": ["<end>", "User:"]}
    assert resolved.system == "Be brief.\nBe kind." and resolved.licenses == ["MIT"]
    assert resolved.messages == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    facts = show(resolved)
    assert facts["details"]["family"] == "llama" and facts["info"]["context_length"] == 256
    assert "completion" in facts["capabilities"] and facts["system"] == "Be brief.\nBe kind."

    # show --modelfile recreates the model: same layers
    create("tiny:again", facts["modelfile"], store=store)
    again = store.read(ModelName.parse("tiny:again"))
    assert again is not None and again.layers == store.read(created).layers

    copy("tiny:v1", "other/tiny:copy", store=store)
    assert {str(e.name) for e in store.entries()} == {"tiny:v1", "tiny:again", "other/tiny:copy"}
    for name in ("tiny:v1", "tiny:again"):
        store.remove(ModelName.parse(name))
    model_blob = store.blob_path(again.layers[0].digest)
    assert model_blob.is_file()  # still used by the copy
    store.remove(ModelName.parse("other/tiny:copy"))
    assert store.entries() == [] and not model_blob.exists()  # unreferenced blobs go with the last name
    with pytest.raises(UnknownModel):
        store.remove(ModelName.parse("other/tiny:copy"))


def test_create_errors(store: ModelStore, tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="no such file"):
        create("m", "FROM ./missing.gguf\n", base_dir=tmp_path, store=store)
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(BadModelFile):
        create("m", "FROM ./bad.gguf\n", base_dir=tmp_path, store=store)
    with pytest.raises(BadRequest, match="ADAPTER"):
        create("m", "FROM ./bad.gguf\nADAPTER ./lora.gguf\n", base_dir=tmp_path, store=store)
    with pytest.raises(BadRequest, match="model name"):
        create("../evil", "FROM ./bad.gguf\n", base_dir=tmp_path, store=store)
    assert store.entries() == []


def test_create_from_a_stored_model_inherits(store: ModelStore, tiny_gguf, tmp_path: Path) -> None:
    tiny_gguf("w.gguf")
    create("base", "FROM ./w.gguf\nSYSTEM one\nPARAMETER top_k 5\n", base_dir=tmp_path, store=store)
    create("child", "FROM base\nPARAMETER temperature 0\n", store=store)
    child = resolve("child", store)
    assert child.system == "one" and child.parameters == {"top_k": 5, "temperature": 0.0}


def write_ollama_store(root: Path, gguf_path: Path) -> dict[str, str]:
    """An Ollama store as Ollama writes it: blobs by digest, manifests by name. Returns name -> manifest sha."""
    (root / "blobs").mkdir(parents=True)

    def blob(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (root / "blobs" / digest.replace(":", "-")).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    model = blob(gguf_path.read_bytes())
    template = blob(b"{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>")
    params = blob(b'{"stop":["<|user|>"],"temperature":0.6,"mirostat":0}')
    config = blob(b'{"model_format":"gguf","model_family":"llama"}')
    shas = {}
    for name, tag in (("tinyllama", "latest"), ("tinyllama", "q4")):
        manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.MANIFEST_MEDIA_TYPE,
                               "config": {"mediaType": mt.CONFIG_MEDIA_TYPE, **config},
                               "layers": [{"mediaType": mt.MODEL, **model}, {"mediaType": mt.TEMPLATE, **template},
                                          {"mediaType": mt.PARAMS, **params}]}, indent=2).encode()
        path = root / "manifests" / "registry.ollama.ai" / "library" / name / tag
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(manifest)
        shas[f"{name}:{tag}"] = hashlib.sha256(manifest).hexdigest()
    broken = root / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    return shas


def test_import_ollama_store(store: ModelStore, tiny_gguf, tmp_path: Path) -> None:
    shas = write_ollama_store(tmp_path / "ollama", tiny_gguf())
    messages: list[str] = []
    imported = import_ollama(tmp_path / "ollama", store, status=messages.append)
    assert sorted(map(str, imported)) == ["tinyllama:latest", "tinyllama:q4"]
    assert any("skipping" in m and "broken" in m for m in messages)
    entries = {str(e.name): e for e in store.entries()}
    assert {name: entries[name].manifest_digest for name in shas} == shas  # digests and IDs kept
    model_layer = entries["tinyllama:latest"].manifest.layers[0]
    source_blob = tmp_path / "ollama" / "blobs" / model_layer.digest.replace(":", "-")
    assert store.blob_path(model_layer.digest).stat().st_ino == source_blob.stat().st_ino  # linked, not copied
    resolved = resolve("tinyllama", store)
    assert resolved.template is not None and ".Prompt" in resolved.template
    assert resolved.parameters["stop"] == ["<|user|>"]
    assert "mirostat" in show(resolved)["parameters"]  # an option camelid lacks is still shown
    with pytest.raises(UnknownModel, match="not an Ollama model store"):
        import_ollama(tmp_path / "nowhere", store)


def test_import_rejects_a_tampered_blob(store: ModelStore, tiny_gguf, tmp_path: Path) -> None:
    write_ollama_store(tmp_path / "ollama", tiny_gguf())
    victim = max((tmp_path / "ollama" / "blobs").iterdir(), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    with pytest.raises(StoreError, match="does not match"):
        import_ollama(tmp_path / "ollama", store)
    assert store.entries() == []


def test_resolve_unknown_and_path(store: ModelStore, tiny_gguf) -> None:
    with pytest.raises(UnknownModel, match="not found"):
        resolve("nosuchmodel:7b", store)
    with pytest.raises(UnknownModel, match="does not exist"):
        resolve("/nowhere/model.gguf", store)
    path = tiny_gguf()
    assert resolve(str(path), store).path == path
