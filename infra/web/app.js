// imgpipe upload page: presigned POST uploads with progress, then polling for the renditions.
// Plain ES module, no build step, no external assets. Talks to the API on the same origin,
// as the user signed in through ./auth.js when the API needs one.

import { Session, wireSignIn } from "./auth.js";

const session = new Session();

import { thumbHashToDataURL } from "./thumbhash.js";

const DEFAULT_CONFIG = Object.freeze({
  maxBytes: 50 * 1024 * 1024,
  maxPixels: 50_000_000,
  contentTypes: [
    "image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "image/heif", "image/avif",
  ],
  renditions: [],
});

// Browsers often report no type for HEIC/HEIF (and sometimes AVIF): fall back to the extension.
const TYPES_BY_EXTENSION = Object.freeze({
  jpg: "image/jpeg", jpeg: "image/jpeg", jpe: "image/jpeg", jfif: "image/jpeg",
  png: "image/png", webp: "image/webp", gif: "image/gif",
  heic: "image/heic", heif: "image/heif", hif: "image/heif", avif: "image/avif",
});
const TYPE_ALIASES = Object.freeze({ "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg" });

const MAX_PARALLEL_UPLOADS = 3;
const POLL_TIMEOUT_MS = 60_000;
const POLL_FIRST_DELAY_MS = 400;
const POLL_MAX_DELAY_MS = 4_000;
const UPLOAD_TIMEOUT_MS = 10 * 60_000;

const $ = (selector, root = document) => root.querySelector(selector);

const dom = {
  input: $("#file-input"),
  dropzone: $("#dropzone"),
  limits: $("#limits"),
  configError: $("#config-error"),
  list: $("#file-list"),
  empty: $("#empty-state"),
  clear: $("#clear-finished"),
  announcer: $("#announcer"),
  template: $("#file-template"),
};

// ---------------------------------------------------------------- formatting

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "?";
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${value} ${value === 1 ? "byte" : "bytes"}`;
  return `${numberFormat.format(value)} ${units[unit]}`;
}

/** An exact size, for messages that compare sizes: "1,234 bytes". */
function exactBytes(bytes) {
  return `${numberFormat.format(bytes)} ${bytes === 1 ? "byte" : "bytes"}`;
}

function formatPixels(pixels) {
  return `${numberFormat.format(pixels / 1_000_000)} megapixels`;
}

function formatDimensions(width, height) {
  return width && height ? `${width} × ${height}` : "?";
}

/** The saving of a rendition against the original: 1 - bytes / original size. */
export function saving(bytes, originalBytes) {
  if (!originalBytes || !Number.isFinite(bytes)) return null;
  return 1 - bytes / originalBytes;
}

function formatSaving(value) {
  if (value === null) return "—";
  const percent = Math.abs(value) * 100;
  // One decimal where rounding would mislead: under 10 %, and 99.5 % or more (never "100 %").
  const precise = (percent > 0 && percent < 10) || (percent >= 99.5 && percent < 100);
  const text = `${precise ? (Math.floor(percent * 10) / 10).toFixed(1) : Math.round(percent)}%`;
  return value >= 0 ? text : `+${text} larger`;
}

function formatName(contentType) {
  const [kind, subtype] = (contentType || "").split("/");
  return kind === "image" && subtype ? subtype.toUpperCase() : contentType || "";
}

function extensionOf(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
}

/** The content type to declare: the browser's, or by extension when the browser has none. */
export function contentTypeFor(file) {
  const declared = (file.type || "").toLowerCase();
  if (declared) return TYPE_ALIASES[declared] || declared;
  return TYPES_BY_EXTENSION[extensionOf(file.name)] || "";
}

/** Reject codes from the pipeline, in words. */
export function describeReason(reason, config = state.config) {
  const types = config.contentTypes.map(formatName).join(", ");
  switch (reason) {
    case "empty":
      return "The file is empty.";
    case "too_large":
      return `The file is larger than the ${formatBytes(config.maxBytes)} limit.`;
    case "unsupported_format":
      return `This file is not an image in a supported format (${types}), whatever its name says.`;
    case "corrupt":
      return "The image is damaged or truncated and could not be decoded.";
    case "too_many_pixels":
      return `The image is larger than the ${formatPixels(config.maxPixels)} limit.`;
    case "too_many_frames":
      return "The animation has too many frames to process.";
    case "duplicate":
      return "This exact file was already processed.";
    case "stale":
      return "A newer upload replaced this file before it was processed.";
    case "source_missing":
      return "The uploaded file was gone before it could be processed.";
    default:
      return reason ? `Processing failed (${reason}).` : "Processing failed for an unknown reason.";
  }
}

/** A ThumbHash (base64) as a PNG data URL, drawn by the reference decoder; null if unusable. */
export function placeholderUrl(thumbhash) {
  if (typeof thumbhash !== "string" || !thumbhash) return null;
  try {
    const bytes = Uint8Array.from(atob(thumbhash), (c) => c.charCodeAt(0));
    return bytes.length >= 5 ? thumbHashToDataURL(bytes) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- errors

class RetryableError extends Error {}
class NetworkError extends RetryableError {}
class RefusedError extends Error {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- API

async function fetchJson(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      cache: "no-store",
      ...options,
      headers: { Accept: "application/json", ...session.headers(), ...(options.headers || {}) },
    });
  } catch {
    throw new NetworkError("The server could not be reached. Check your connection.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { status: response.status, ok: response.ok, body };
}

async function loadConfig() {
  const { ok, status, body } = await fetchJson("/config").catch(() => ({ ok: false, status: 0 }));
  if (ok && body && Number.isFinite(body.maxBytes) && Array.isArray(body.contentTypes)) {
    return { ...DEFAULT_CONFIG, ...body };
  }
  dom.configError.textContent =
    `Could not load the upload limits (${status ? `HTTP ${status}` : "no connection"}); ` +
    "using the defaults. The server still checks every upload.";
  dom.configError.hidden = false;
  return { ...DEFAULT_CONFIG };
}

function showLimits(config) {
  const types = config.contentTypes.map(formatName).filter((t, i, all) => all.indexOf(t) === i);
  const parts = [
    `Up to ${formatBytes(config.maxBytes)} and ${formatPixels(config.maxPixels)} per image`,
    types.join(", "),
  ];
  if (config.renditions.length) parts.push(`Renditions: ${config.renditions.join(", ")}`);
  dom.limits.textContent = parts.join(" · ");
}

/** POST the file to the presigned URL: every policy field first, the file last. */
function postToStorage(url, fields, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.timeout = UPLOAD_TIMEOUT_MS;
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve();
        return;
      }
      reject(new RetryableError(describeStorageError(xhr.status, xhr.responseText)));
    });
    xhr.addEventListener("error", () =>
      reject(new RetryableError("The upload was interrupted by a network error.")));
    xhr.addEventListener("timeout", () => reject(new RetryableError("The upload timed out.")));
    xhr.addEventListener("abort", () => reject(new RetryableError("The upload was cancelled.")));
    xhr.send(form);
  });
}

const FAILED_CONDITION = "Invalid according to Policy: Policy Condition failed: ";

/** A failed POST policy condition: its field ("$Content-Type" -> "content-type") and value. */
function failedCondition(message) {
  if (!message.startsWith(FAILED_CONDITION)) return null;
  try {
    const [, field, value] = JSON.parse(message.slice(FAILED_CONDITION.length));
    return { field: String(field).replace(/^\$/, "").toLowerCase(), value };
  } catch {
    return null;
  }
}

/** S3's XML error answer to the form POST, in words; else its Code and Message, or the status. */
export function describeStorageError(status, responseText) {
  const doc = new DOMParser().parseFromString(responseText || "<none/>", "application/xml");
  const read = (name) => doc.querySelector(`Error > ${name}`)?.textContent.trim() || "";
  const sizes = (verb, limitName) => {
    const [proposed, limit] = [read("ProposedSize"), read(limitName)];
    if (!/^\d+$/.test(proposed) || !/^\d+$/.test(limit)) return "";
    return ` (${exactBytes(Number(proposed))}; the upload ${verb} ${exactBytes(Number(limit))})`;
  };
  const code = read("Code");
  const message = read("Message");
  switch (code) {
    case "EntityTooLarge":
      return `The file is larger than declared${sizes("allows", "MaxSizeAllowed")}.`;
    case "EntityTooSmall":
      return `The file is smaller than declared${sizes("needs", "MinSizeAllowed")}.`;
    case "SignatureDoesNotMatch":
      return "The upload was refused: the signed policy was altered (SignatureDoesNotMatch).";
    case "AccessDenied": {
      if (message.endsWith("Policy expired.")) return "The upload link expired; try again.";
      const condition = failedCondition(message);
      if (condition?.field === "content-type") {
        return `The file's type does not match the one declared (${condition.value}).`;
      }
      break;
    }
    default:
      break;
  }
  const details = [code, message].filter(Boolean).join(": ") || `HTTP ${status}`;
  return `The storage service refused the upload: ${details}`;
}

// ---------------------------------------------------------------- one file

class FileUpload {
  constructor(file) {
    this.file = file;
    this.contentType = contentTypeFor(file);
    this.imageId = null;
    this.resumeFrom = "upload";
    this.previewUrl = null;
    this.busy = false;

    const fragment = dom.template.content.cloneNode(true);
    this.el = fragment.querySelector(".file-card");
    this.nameEl = $(".file-name", this.el);
    this.metaEl = $(".file-meta", this.el);
    this.progressEl = $(".file-progress", this.el);
    this.statusEl = $(".file-status", this.el);
    this.actionsEl = $(".file-actions", this.el);
    this.retryEl = $(".retry", this.el);
    this.renditionsEl = $(".renditions", this.el);
    this.previewImg = $(".preview-img", this.el);
    this.previewExt = $(".preview-ext", this.el);

    const id = `file-${crypto.randomUUID ? crypto.randomUUID() : Date.now() + Math.random()}`;
    this.nameEl.id = `${id}-name`;
    this.nameEl.textContent = file.name;
    this.nameEl.title = file.name;
    this.metaEl.textContent = [formatBytes(file.size), formatName(this.contentType) || "unknown type"]
      .join(" · ");
    this.progressEl.setAttribute("aria-labelledby", this.nameEl.id);
    this.progressEl.setAttribute("aria-describedby", `${id}-status`);
    this.statusEl.id = `${id}-status`;
    this.retryEl.setAttribute("aria-describedby", this.nameEl.id);
    this.retryEl.addEventListener("click", () => this.retry());
    this.previewExt.textContent = (extensionOf(file.name) || "file").slice(0, 5).toUpperCase();
    this.showLocalPreview();
  }

  get finished() {
    return ["done", "failed", "refused"].includes(this.el.dataset.state);
  }

  setState(stateName, message) {
    this.el.dataset.state = stateName;
    this.statusEl.textContent = message;
    this.actionsEl.hidden = stateName !== "error";
    updateClearButton();
  }

  setProgress(fraction) {
    if (fraction === null) {
      this.progressEl.removeAttribute("value");
      return;
    }
    this.progressEl.value = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    this.progressEl.dataset.pct = `${this.progressEl.value}%`;
  }

  showLocalPreview() {
    // Only types the browser can draw; HEIC shows its extension until the thumbnail arrives.
    if (!["image/jpeg", "image/png", "image/webp", "image/gif", "image/avif"].includes(this.contentType)) {
      return;
    }
    if (this.file.size > 20 * 1024 * 1024) return;
    this.previewUrl = URL.createObjectURL(this.file);
    this.setPreview(this.previewUrl, "");
  }

  setPreview(src, alt) {
    const img = this.previewImg;
    img.onload = () => {
      img.hidden = false;
      this.previewExt.hidden = true;
      this.clearPlaceholder();
    };
    img.onerror = () => {
      img.hidden = true;
      this.previewExt.hidden = false;
    };
    img.alt = alt;
    img.src = src;
  }

  /** The item's ThumbHash (and dominant colour) behind the thumbnail until it loads. */
  showPlaceholder(item) {
    const url = placeholderUrl(item.placeholder);
    if (!url) return;
    const box = this.previewImg.parentElement;
    box.style.backgroundColor = /^#[0-9a-f]{6}$/i.test(item.color || "") ? item.color : "";
    box.style.backgroundImage = `url("${url}")`;
    box.dataset.placeholder = "shown";
    this.previewImg.hidden = true;
    this.previewExt.hidden = true;
  }

  clearPlaceholder() {
    const box = this.previewImg.parentElement;
    if (box.dataset.placeholder !== "shown") return;
    box.style.backgroundImage = "";
    box.style.backgroundColor = "";
    box.dataset.placeholder = "replaced";
  }

  releasePreview() {
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = null;
  }

  /** The client-side checks, mirroring GET /config. Returns a refusal message or null. */
  check(config) {
    if (this.file.size === 0) return describeReason("empty", config);
    if (this.file.size > config.maxBytes) {
      return `Too large: ${formatBytes(this.file.size)} is over the ${formatBytes(config.maxBytes)} limit.`;
    }
    if (!config.contentTypes.includes(this.contentType)) {
      const types = config.contentTypes.map(formatName).join(", ");
      const what = this.contentType ? `“${this.contentType}”` : "an unknown type";
      return `Unsupported type: this is ${what}. Upload ${types} images.`;
    }
    return null;
  }

  async run() {
    if (this.busy) return;
    this.busy = true;
    try {
      const config = await state.configReady;
      if (this.resumeFrom === "upload") {
        const refusal = this.check(config);
        if (refusal) {
          this.setProgress(0);
          this.setState("refused", `Not uploaded. ${refusal}`);
          this.releasePreview();
          return;
        }
        await uploadSlots.run(() => this.upload());
        this.resumeFrom = "poll";
      }
      const item = await this.poll();
      this.showResult(item, config);
    } catch (error) {
      if (error instanceof RefusedError) {
        this.setState("refused", `Not uploaded. ${error.message}`);
      } else {
        const message = error instanceof RetryableError ? error.message : `Unexpected error: ${error}`;
        const action = this.resumeFrom === "poll" ? "Check again" : "Retry";
        this.retryEl.textContent = action;
        this.setState("error", message);
      }
    } finally {
      this.busy = false;
    }
  }

  retry() {
    this.setProgress(this.resumeFrom === "poll" ? 1 : 0);
    this.run();
    // The button hides while the work runs; keep keyboard focus on the card's status.
    this.statusEl.setAttribute("tabindex", "-1");
    this.statusEl.focus();
  }

  async upload() {
    this.setState("uploading", "Requesting an upload link…");
    this.setProgress(0);
    const { ok, status, body } = await fetchJson("/uploads", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ filename: this.file.name, contentType: this.contentType, size: this.file.size }),
    });
    if (!ok) {
      const message = body?.message || `HTTP ${status}`;
      if (status === 401) throw new RefusedError("Sign in to upload.");
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        throw new RefusedError(`The server refused it: ${message}`);
      }
      throw new RetryableError(`Could not get an upload link (${message}).`);
    }
    this.imageId = body.imageId;
    this.setState("uploading", "Uploading…");
    await postToStorage(body.url, body.fields || {}, this.file, (fraction) => this.setProgress(fraction));
    this.setProgress(1);
  }

  async poll() {
    this.setState("processing", "Uploaded. Processing…");
    // The id holds slashes ("{bucket}/{key}"): encode each segment, keep the slashes.
    const path = `/images/${this.imageId.split("/").map(encodeURIComponent).join("/")}`;
    const deadline = performance.now() + POLL_TIMEOUT_MS;
    let delay = POLL_FIRST_DELAY_MS;
    let lastProblem = "";
    for (;;) {
      try {
        // 200 {"status": "PENDING"} while the upload waits in the queue: no error to log.
        const { ok, status, body } = await fetchJson(path);
        if (ok && body && (body.status === "PROCESSED" || body.status === "FAILED")) return body;
        if (ok && body?.status === "PENDING") this.setState("processing", "Uploaded. Waiting in the queue…");
        if (status === 404) throw new RetryableError("The upload is no longer there (HTTP 404).");
        if (!ok && status < 500) {
          throw new RetryableError(`Could not read the result (${body?.message || `HTTP ${status}`}).`);
        }
        lastProblem = status >= 500 ? ` The API answered HTTP ${status}.` : "";
      } catch (error) {
        if (!(error instanceof NetworkError)) throw error;
        lastProblem = " The server could not be reached.";
      }
      if (performance.now() + delay > deadline) {
        throw new RetryableError(
          `Uploaded, but no result after ${Math.round(POLL_TIMEOUT_MS / 1000)} s: ` +
            `the image pipeline may be busy or not running.${lastProblem}`,
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 1.6, POLL_MAX_DELAY_MS);
    }
  }

  showResult(item, config) {
    if (item.status === "FAILED") {
      this.setState("failed", `Rejected: ${describeReason(item.reason, config)}`);
      this.el.dataset.reason = item.reason || "";
      this.releasePreview();
      return;
    }
    const renditions = [...(item.renditions || [])];
    const original = item.size || this.file.size;
    const source = [formatName(`image/${(item.format || "").toLowerCase()}`), formatDimensions(item.width, item.height)]
      .filter(Boolean)
      .join(" ");
    const count = `${renditions.length} rendition${renditions.length === 1 ? "" : "s"}`;
    this.setState("done", `Done: ${count} from a ${source} original.`);

    const thumb = renditions.find((r) => r.name === "thumb") ||
      renditions.reduce((best, r) => (!best || r.bytes < best.bytes ? r : best), null);
    if (thumb?.url) {
      this.releasePreview();
      this.showPlaceholder(item);
      this.setPreview(thumb.url, `Thumbnail of ${this.file.name}`);
    }

    const table = $(".rendition-table", this.renditionsEl);
    $("caption", table).textContent = `Renditions of ${this.file.name}`;
    const tbody = $("tbody", table);
    tbody.replaceChildren();
    for (const rendition of renditions) {
      const row = document.createElement("tr");
      row.dataset.rendition = rendition.name;
      const nameCell = document.createElement("th");
      nameCell.scope = "row";
      if (rendition.url) {
        const link = document.createElement("a");
        link.href = rendition.url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        link.textContent = rendition.name;
        link.setAttribute("aria-label", `${rendition.name} (opens in a new tab)`);
        nameCell.append(link);
      } else {
        nameCell.textContent = rendition.name;
      }
      const value = saving(rendition.bytes, original);
      const cells = [
        formatDimensions(rendition.width, rendition.height),
        (rendition.format || "").toUpperCase(),
        formatBytes(rendition.bytes),
        formatSaving(value),
      ];
      row.append(nameCell);
      cells.forEach((text, index) => {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (index >= 2) cell.className = "num";
        if (index === 3 && value !== null) cell.classList.add(value >= 0 ? "saving" : "growth");
        row.append(cell);
      });
      tbody.append(row);
    }
    this.renditionsEl.hidden = renditions.length === 0;
  }
}

// ---------------------------------------------------------------- queue and page wiring

class Slots {
  constructor(size) {
    this.free = size;
    this.waiting = [];
  }

  async run(task) {
    if (this.free === 0) await new Promise((resolve) => this.waiting.push(resolve));
    else this.free -= 1;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free += 1;
    }
  }
}

const uploadSlots = new Slots(MAX_PARALLEL_UPLOADS);
const state = { config: { ...DEFAULT_CONFIG }, configReady: null, uploads: [] };

function announce(message) {
  dom.announcer.textContent = "";
  // A fresh text node after a tick, so that repeated messages are announced again.
  setTimeout(() => {
    dom.announcer.textContent = message;
  }, 50);
}

function updateClearButton() {
  dom.clear.hidden = !state.uploads.some((upload) => upload.finished);
  dom.empty.hidden = state.uploads.length > 0;
}

function addFiles(fileList) {
  const files = [...fileList];
  if (!files.length) return;
  for (const file of files) {
    const upload = new FileUpload(file);
    state.uploads.push(upload);
    dom.list.append(upload.el);
    upload.setState("queued", "Waiting…");
    upload.run();
  }
  updateClearButton();
  announce(`${files.length} file${files.length === 1 ? "" : "s"} added.`);
}

function clearFinished() {
  for (const upload of state.uploads.filter((u) => u.finished)) {
    upload.releasePreview();
    upload.el.remove();
  }
  state.uploads = state.uploads.filter((u) => !u.finished);
  updateClearButton();
  dom.dropzone.focus();
}

function hasFiles(event) {
  return [...(event.dataTransfer?.types || [])].includes("Files");
}

function wireDropzone() {
  dom.dropzone.addEventListener("click", () => dom.input.click());
  dom.input.addEventListener("change", () => {
    addFiles(dom.input.files);
    dom.input.value = "";
  });
  dom.dropzone.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dom.dropzone.classList.add("is-dragover");
  });
  dom.dropzone.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    dom.dropzone.classList.add("is-dragover");
  });
  dom.dropzone.addEventListener("dragleave", (event) => {
    if (!dom.dropzone.contains(event.relatedTarget)) dom.dropzone.classList.remove("is-dragover");
  });
  dom.dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dom.dropzone.classList.remove("is-dragover");
    addFiles(event.dataTransfer?.files || []);
  });
  // A file dropped beside the zone must not navigate away from the page.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (hasFiles(event) && !dom.dropzone.contains(event.target)) {
        event.preventDefault();
        if (event.dataTransfer) event.dataTransfer.dropEffect = "none";
      }
    });
  }
  // Pasting images (e.g. a screenshot) uploads them too.
  document.addEventListener("paste", (event) => {
    const files = event.clipboardData?.files;
    if (files?.length) addFiles(files);
  });
  dom.clear.addEventListener("click", clearFinished);
}

function start() {
  wireDropzone();
  state.configReady = loadConfig().then((config) => {
    state.config = config;
    showLimits(config);
    session.configure(config.auth);
    wireSignIn(session);
    return config;
  });
  document.documentElement.dataset.ready = "true";
}

start();
