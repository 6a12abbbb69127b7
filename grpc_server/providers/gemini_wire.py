"""Google's Gemini API wire format: the bodies sent, the answers read, the errors classified.

The adapter (gemini) chooses URLs, keys and how many calls make n images; this module
turns calls into generateContent, predict (Imagen) and batchEmbedContents bodies, and
their answers into outcomes. An answer that is not Gemini's shape raises Malformed (a
retryable 502 for the adapter); an answer that is whole but holds no image raises
NoImage with the block or finish reason (a 400, not retried). Error answers are
gemini_errors'. The module docstring of
gemini says what is sent and read, and why.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

from grpc_server.providers.base import (
    EmbeddingCall,
    EmbeddingOutcome,
    ImageEditCall,
    ImageGenerationCall,
    ImageInput,
    ImageOutcome,
    ProducedImage,
)
from grpc_server.providers.http_errors import Malformed
from grpc_server.providers.media import nearest_aspect_ratio, sniff_image_type

GEMINI_ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGEN_ASPECT_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
IMAGEN_PREFIX = "imagen-"


BACKGROUND_REMOVAL_PROMPT = "Remove the background, keep the subject, transparent background"
MASK_HINT = (
    "The next image is a mask for the first image: edit only where the mask is transparent "
    "and keep everything else unchanged."
)

_IMAGEN_MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}
# Reasons that say nothing about why no image came.
_UNINFORMATIVE_FINISH = frozenset({"", "STOP", "FINISH_REASON_UNSPECIFIED"})
# GenerateContentRequest fields that live beside generationConfig, not inside it.
_REQUEST_FIELDS = frozenset({"safetySettings", "systemInstruction", "tools", "toolConfig", "cachedContent"})
# candidateCount too: image models refuse more than one (n is n calls instead).
_RESERVED_EXTRAS = frozenset(
    {"responseModalities", "contents", "model", "content", "instances", "candidateCount"}
)

_TEXT_PREFIX = 200
MAX_COUNT = 2**53
"""Larger token counts are a broken answer (stored and rendered as a double, they cannot be)."""


def is_imagen(model: str) -> bool:
    return model.removeprefix("models/").startswith(IMAGEN_PREFIX)


class NoImage(Exception):
    """A whole answer without an image: a blocked prompt, a SAFETY finish, a text-only reply."""

    def __init__(self, problem: str, reason: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.reason = reason


# Request bodies


def generation_body(call: ImageGenerationCall) -> dict[str, Any]:
    params = call.params
    config = _generation_config(params.size, params.seed)
    body: dict[str, Any] = {"contents": [{"parts": [{"text": params.prompt}]}]}
    return _with_extras(body, config, params.extra_params)


def _generation_config(size: str | None, seed: int | None) -> dict[str, Any]:
    """No candidateCount: image models refuse more than one (n is n calls instead)."""
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if seed is not None:
        config["seed"] = seed
    if (ratio := nearest_aspect_ratio(size, GEMINI_ASPECT_RATIOS)) is not None:
        config["imageConfig"] = {"aspectRatio": ratio}
    return config


def _with_extras(body: dict[str, Any], config: dict[str, Any], extras: Mapping[str, Any]) -> dict[str, Any]:
    """The generateContent body with extra_params placed beside or inside generationConfig."""
    for name, raw in extras.items():
        if name in _RESERVED_EXTRAS or name == "generationConfig":
            continue
        _merge(body if name in _REQUEST_FIELDS else config, name, _extra_value(raw))
    body["generationConfig"] = config
    return body


def _merge(target: dict[str, Any], name: str, value: Any) -> None:
    current = target.get(name)
    target[name] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value


def _extra_value(value: Any) -> Any:
    """Edit extras are multipart strings: decode the ones that are JSON objects or arrays."""
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def imagen_body(call: ImageGenerationCall) -> dict[str, Any]:
    params = call.params
    parameters: dict[str, Any] = {"sampleCount": params.n or 1}
    if (ratio := nearest_aspect_ratio(params.size, IMAGEN_ASPECT_RATIOS)) is not None:
        parameters["aspectRatio"] = ratio
    mime = _IMAGEN_MIME_TYPES.get((params.output_format or "").lower())
    if mime is not None:
        parameters["outputOptions"] = {"mimeType": mime}
    for name, value in params.extra_params.items():
        if name not in _RESERVED_EXTRAS:
            _merge(parameters, name, value)
    return {"instances": [{"prompt": params.prompt}], "parameters": parameters}


def edit_body(call: ImageEditCall) -> bytes:
    """The generateContent body of an edit, as bytes: runs in a worker thread.

    Gemini takes input images only inline, as base64 inside the JSON: there is no
    way to stream them. Each file is read once and encoded straight into the body,
    never escaped or copied through a JSON string, so the peak is about twice the
    base64 of all inputs (about 2.7 times their size on disk), for the length of
    one call: 16 inputs of 50 MB cost about 2.2 GB. That is the price of the API.
    """
    params = call.params
    prompt = params.prompt
    if not prompt.strip() and params.type == "background_removal":
        prompt = BACKGROUND_REMOVAL_PROMPT
    # Each image's data is a placeholder in the JSON skeleton, replaced by the file's base64.
    placeholder = f"asyncgate-inline-{uuid.uuid4().hex}"
    parts: list[dict[str, Any]] = [{"text": prompt}] if prompt else []
    parts += [_inline_placeholder(image, placeholder) for image in call.images]
    files = list(call.images)
    if call.mask is not None:
        parts += [{"text": MASK_HINT}, _inline_placeholder(call.mask, placeholder)]
        files.append(call.mask)
    config = _generation_config(params.size, params.seed)
    body = _with_extras({"contents": [{"parts": parts}]}, config, params.extra_params)
    pieces = json_bytes(body).split(json.dumps(placeholder).encode())
    chunks = [pieces[0]]
    # strict: a random placeholder cannot also occur in the prompt or the extras.
    for image, piece in zip(files, pieces[1:], strict=True):
        chunks += [b'"', base64.b64encode(image.path.read_bytes()), b'"', piece]
    return b"".join(chunks)


def _inline_placeholder(image: ImageInput, placeholder: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": image.content_type, "data": placeholder}}


def embed_body(resource: str, texts: list[str], call: EmbeddingCall) -> dict[str, Any]:
    template: dict[str, Any] = {}
    for name, value in call.params.extra_params.items():
        if name not in _RESERVED_EXTRAS:
            template[name] = value
    if call.params.dimensions is not None:
        template["outputDimensionality"] = call.params.dimensions
    requests = [{"model": resource, "content": {"parts": [{"text": text}]}, **template} for text in texts]
    return {"requests": requests}


def json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# Answers


def content_outcome(doc: dict[str, Any]) -> ImageOutcome:
    """The images of a generateContent answer, or NoImage (or Malformed)."""
    candidates = doc.get("candidates", [])
    if not isinstance(candidates, list):
        raise Malformed("`candidates` is not a list")
    images: list[ProducedImage] = []
    for index, candidate in enumerate(candidates):
        images.extend(_candidate_images(candidate, index))
    if not images:
        raise _no_image(doc, candidates)
    return ImageOutcome(
        created=int(time.time()),
        images=images,
        usage=_usage(doc.get("usageMetadata")),
        output_format=_FORMATS.get(images[0].content_type),
    )


def _candidate_images(candidate: object, index: int) -> list[ProducedImage]:
    if not isinstance(candidate, dict):
        raise Malformed(f"candidates[{index}] is not an object")
    content = candidate.get("content")
    if content is None:
        return []  # a blocked candidate carries no content
    parts = content.get("parts", []) if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise Malformed(f"candidates[{index}].content.parts is not a list")
    # Thinking models may show draft images and reasoning as "thought" parts: not the answer.
    answer = [p for p in parts if isinstance(p, dict) and not p.get("thought")]
    text = " ".join(t.strip() for p in answer if isinstance(t := p.get("text"), str) and t.strip())
    images = []
    for part in answer:
        inline = part.get("inlineData", part.get("inline_data"))
        if inline is not None:
            image = _inline_image(inline, index)
            if image is not None:
                images.append(ProducedImage(image[0], content_type=image[1], revised_prompt=text or None))
    return images


def _inline_image(inline: object, index: int) -> tuple[bytes, str] | None:
    """(bytes, content type) of an inlineData part; None for a part that is not an image."""
    if not isinstance(inline, dict):
        raise Malformed(f"candidates[{index}] has an inlineData that is not an object")
    mime = inline.get("mimeType", inline.get("mime_type"))
    mime = mime.lower() if isinstance(mime, str) else ""
    if mime and not mime.startswith("image/"):
        return None
    data = decode_base64(inline.get("data"), f"candidates[{index}] inlineData.data")
    return data, mime or _sniff(data)


def _no_image(doc: dict[str, Any], candidates: list[Any]) -> NoImage:
    feedback = doc.get("promptFeedback")
    feedback = feedback if isinstance(feedback, dict) else {}
    block = _str(feedback.get("blockReason"))
    if block:
        problem = f"the prompt was blocked ({block})"
        detail = _str(feedback.get("blockReasonMessage"))
        return NoImage(f"{problem}: {detail}" if detail else problem, block)
    first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    finish = _str(first.get("finishReason"))
    detail = _str(first.get("finishMessage")) or _candidate_text(first)
    if finish not in _UNINFORMATIVE_FINISH:
        problem = f"no image was generated (finish reason {finish})"
        return NoImage(f"{problem}: {detail}" if detail else problem, finish)
    problem = "the model answered without an image"
    return NoImage(f"{problem}: {detail}" if detail else problem, "NO_IMAGE")


def imagen_outcome(doc: dict[str, Any]) -> ImageOutcome:
    """The images of an Imagen predict answer, or NoImage (or Malformed)."""
    predictions = doc.get("predictions", [])
    if not isinstance(predictions, list):
        raise Malformed("`predictions` is not a list")
    images: list[ProducedImage] = []
    filtered: list[str] = []
    for index, prediction in enumerate(predictions):
        if not isinstance(prediction, dict):
            raise Malformed(f"predictions[{index}] is not an object")
        if "bytesBase64Encoded" not in prediction:
            # Imagen drops an image its safety filters caught, saying why instead.
            filtered.append(_str(prediction.get("raiFilteredReason")) or "no image")
            continue
        data = decode_base64(prediction["bytesBase64Encoded"], f"predictions[{index}].bytesBase64Encoded")
        mime = _str(prediction.get("mimeType")).lower() or _sniff(data)
        images.append(ProducedImage(data, content_type=mime))
    if not images and filtered:
        raise NoImage(f"every image was filtered: {'; '.join(filtered)}", "RAI_FILTERED")
    if not images:
        raise NoImage("the answer holds no image", "NO_IMAGE")
    return ImageOutcome(
        created=int(time.time()), images=images, output_format=_FORMATS.get(images[0].content_type)
    )


def embedding_outcome(doc: dict[str, Any], model: str, expected: int) -> EmbeddingOutcome:
    embeddings = doc.get("embeddings")
    if not isinstance(embeddings, list):
        raise Malformed("`embeddings` is not a list")
    if len(embeddings) != expected:
        raise Malformed(f"{len(embeddings)} embeddings for {expected} inputs")
    vectors = []
    for index, item in enumerate(embeddings):
        values = item.get("values") if isinstance(item, dict) else None
        vector = _vector(values)
        if vector is None:
            raise Malformed(f"embeddings[{index}].values is not a list of finite numbers")
        vectors.append(vector)
    return EmbeddingOutcome(vectors=vectors, model=model)


def decode_base64(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise Malformed(f"{where} is missing")
    # Proto JSON writers may use the URL-safe alphabet and drop the padding: accept both.
    text = value.replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise Malformed(f"{where} is not valid base64") from None
    if not data:
        raise Malformed(f"{where} is empty")
    return data


def _usage(metadata: object) -> dict[str, Any] | None:
    if not isinstance(metadata, dict):
        return None
    prompt = _int(metadata.get("promptTokenCount"))
    output = _int(metadata.get("candidatesTokenCount"))
    total = _int(metadata.get("totalTokenCount")) or prompt + output
    usage: dict[str, Any] = {"input_tokens": prompt, "output_tokens": output, "total_tokens": total}
    details = _modality_tokens(metadata.get("promptTokensDetails"))
    if details:
        usage["input_tokens_details"] = details
    return usage


def _modality_tokens(details: object) -> dict[str, int]:
    """promptTokensDetails `[{"modality": "TEXT", "tokenCount": 5}, ...]` as OpenAI's text_tokens, ..."""
    counts: dict[str, int] = {}
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict) and (modality := _str(item.get("modality"))):
            key = f"{modality.lower()}_tokens"
            counts[key] = counts.get(key, 0) + _int(item.get("tokenCount"))
    return counts


def _candidate_text(candidate: Mapping[str, Any]) -> str:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts = [p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]
    text = " ".join(" ".join(texts).split())
    return text if len(text) <= _TEXT_PREFIX else text[:_TEXT_PREFIX] + "..."


def _vector(values: object) -> list[float] | None:
    if not isinstance(values, list):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    vector = [float(v) for v in values]
    return vector if all(map(math.isfinite, vector)) else None


def _sniff(data: bytes) -> str:
    return sniff_image_type(data) or "image/png"


def merged(outcomes: list[ImageOutcome]) -> ImageOutcome:
    """The outcomes of n calls as one: every image in call order, the usage summed."""
    if len(outcomes) == 1:
        return outcomes[0]
    images = [image for outcome in outcomes for image in outcome.images]
    usages = [outcome.usage for outcome in outcomes if outcome.usage is not None]
    return ImageOutcome(
        created=min(outcome.created for outcome in outcomes),
        images=images,
        usage=_summed(usages) if usages else None,
        output_format=outcomes[0].output_format,
    )


def _summed(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Token counts added up key by key, nested counts (input_tokens_details) too."""
    total: dict[str, Any] = {}
    for usage in usages:
        for key, value in usage.items():
            if isinstance(value, dict):
                total[key] = _summed([total.get(key, {}), value])
            else:
                total[key] = total.get(key, 0) + value
    return total


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int:
    """A token count; 0 when not an integer, Malformed when absurdly large."""
    if not isinstance(value, int) or isinstance(value, bool):
        return 0
    if abs(value) > MAX_COUNT:
        raise Malformed(f"a token count over {MAX_COUNT} is not plausible")
    return value
