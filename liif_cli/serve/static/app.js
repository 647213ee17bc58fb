// The page: pick or drop an image, POST it to /v1/upscale (elapsed time and the library's estimate while it
// renders, Cancel aborts the request and so the server's job), show before/after (labelled; the divider
// dragged on the image, by keyboard or by the range input; fit or 1:1), offer the file; then POST it to
// /v1/encodings and hand the id to the zoom viewer (zoom.js). No libraries, no network beyond this server.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { file: null, beforeUrl: null, afterUrl: null, encoding: null, xhr: null, timer: 0, dims: null };

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function pick(file) {
    if (!file) return;
    state.file = file;
    const size = file.size < 10240 ? `${file.size} bytes` : `${(file.size / 1024).toFixed(0)} KiB`;
    $("drop-text").textContent = `${file.name} (${size})`;
    $("go").disabled = false;
    showError("");
    state.dims = null; // the input's size, for the estimate (the browser may not decode every format)
    const probe = new Image();
    const url = URL.createObjectURL(file);
    probe.onload = () => { if (state.file === file) state.dims = [probe.naturalWidth, probe.naturalHeight]; URL.revokeObjectURL(url); };
    probe.onerror = () => URL.revokeObjectURL(url);
    probe.src = url;
  }

  $("file").addEventListener("change", (e) => pick(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pick(e.dataTransfer.files[0]);
  });

  function setSlider(percent) {
    percent = Math.min(100, Math.max(0, percent));
    $("before").style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
    $("divider").style.left = `${percent}%`;
    $("slider").value = percent;
    $("compare").setAttribute("aria-valuenow", String(Math.round(percent)));
  }
  $("slider").addEventListener("input", (e) => setSlider(Number(e.target.value)));

  // The divider follows the pointer on the image (press and drag), and the arrow keys when it has focus.
  const compare = $("compare");
  const fromPointer = (e) => {
    const box = compare.getBoundingClientRect();
    setSlider(((e.clientX - box.left) / box.width) * 100);
  };
  compare.addEventListener("pointerdown", (e) => {
    compare.setPointerCapture(e.pointerId);
    compare.dataset.dragging = "1";
    fromPointer(e);
  });
  compare.addEventListener("pointermove", (e) => { if (compare.dataset.dragging) fromPointer(e); });
  const stopDrag = () => { delete compare.dataset.dragging; };
  compare.addEventListener("pointerup", stopDrag);
  compare.addEventListener("pointercancel", stopDrag);
  compare.addEventListener("keydown", (e) => {
    const now = Number($("slider").value);
    const step = e.shiftKey ? 10 : 2;
    const to = { ArrowLeft: now - step, ArrowRight: now + step, Home: 0, End: 100 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    setSlider(to);
  });

  // Fit (the column's width) or 1:1 (one image pixel per device pixel, scrolled in its frame).
  $("view-mode").addEventListener("click", () => {
    const actual = !compare.classList.contains("actual");
    compare.classList.toggle("actual", actual);
    $("view-mode").setAttribute("aria-pressed", String(actual));
    $("view-mode").textContent = actual ? "fit" : "1:1";
    compare.style.width = actual ? `${$("after").naturalWidth / (window.devicePixelRatio || 1)}px` : "";
  });

  function outputSize() { // what the options ask for, as the library rounds it (for the estimate only)
    if (!state.dims) return null;
    const [w, h] = state.dims;
    const v = $("value").value.trim();
    const mode = $("mode").value;
    if (mode === "scale") {
      const [sx, sy] = v.split(",").map(Number);
      return [Math.round(w * sx), Math.round(h * (sy || sx))];
    }
    if (mode === "size") return v.split("x").map(Number);
    if (mode === "width") return [Number(v), Math.round((h * Number(v)) / w)];
    return [Math.round((w * Number(v)) / h), Number(v)];
  }

  async function showEstimate() {
    const out = outputSize();
    if (!out || !out.every((n) => Number.isFinite(n) && n > 0)) return;
    try {
      const q = new URLSearchParams({ input: state.dims.join("x"), output: out.join("x") });
      const r = await fetch(`/v1/estimate?${q}`);
      if (r.ok) state.estimate = (await r.json()).seconds;
    } catch (_) { /* no estimate: the elapsed time alone */ }
  }

  function tick(t0) {
    const s = (performance.now() - t0) / 1000;
    const est = state.estimate ? ` of about ${state.estimate < 1 ? "1" : Math.round(state.estimate)} s` : "";
    $("elapsed").textContent = `${s.toFixed(0)} s${est}`;
  }

  function clearResult() { // a new job or a failure: the previous result is not this one
    for (const url of [state.beforeUrl, state.afterUrl]) if (url) URL.revokeObjectURL(url);
    state.beforeUrl = state.afterUrl = null;
    $("after").removeAttribute("src");
    $("before").removeAttribute("src");
    $("result").hidden = true;
  }

  function filenameFrom(disposition) {
    const m = /filename="([^"]+)"/.exec(disposition || "");
    return m ? m[1] : "upscaled.png";
  }

  function upscale(event) {
    event.preventDefault();
    if (!state.file) return;
    const body = new FormData();
    body.append("image", state.file, state.file.name);
    body.append($("mode").value, $("value").value.trim());
    body.append("format", $("format").value);
    const xhr = new XMLHttpRequest();
    state.xhr = xhr;
    xhr.open("POST", "/v1/upscale");
    xhr.responseType = "blob";
    clearResult();
    $("go").disabled = true;
    $("progress-row").hidden = false;
    $("progress").max = 1;
    $("progress").value = 0;
    $("status").textContent = "uploading";
    showError("");
    state.estimate = null;
    showEstimate();
    const t0 = performance.now();
    tick(t0);
    state.timer = setInterval(() => tick(t0), 250);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) $("progress").value = e.loaded / e.total;
    };
    xhr.upload.onload = () => {
      $("progress").removeAttribute("value"); // indeterminate while the server renders
      $("status").textContent = "upscaling";
    };
    xhr.onerror = () => finish("the server could not be reached");
    xhr.onabort = () => finish("cancelled");
    xhr.onload = async () => {
      if (xhr.status !== 200) {
        let message = `error ${xhr.status}`;
        try { message = JSON.parse(await xhr.response.text()).error || message; } catch (_) { /* not JSON */ }
        if (xhr.status === 429) message += " (the server is busy: try again shortly)";
        finish(message);
        return;
      }
      show(xhr.response, filenameFrom(xhr.getResponseHeader("Content-Disposition")),
           xhr.getResponseHeader("X-Liif-Size") || "");
      finish("");
    };
    xhr.send(body);
  }

  function finish(error) {
    clearInterval(state.timer);
    state.xhr = null;
    $("go").disabled = !state.file;
    $("progress-row").hidden = true;
    if (error) clearResult();
    showError(error);
  }
  // Cancel: abort the request; the server sees the client go and cancels the job.
  $("cancel").addEventListener("click", () => { if (state.xhr) state.xhr.abort(); });

  function show(blob, filename, size) {
    clearResult();
    state.beforeUrl = URL.createObjectURL(state.file);
    state.afterUrl = URL.createObjectURL(blob);
    $("after").src = state.afterUrl;
    $("before").src = state.beforeUrl;
    $("result-size").textContent = size ? `(${size})` : "";
    const link = $("download");
    link.href = state.afterUrl;
    link.download = filename;
    link.textContent = `Download ${filename}`;
    compare.classList.remove("actual");
    compare.style.width = "";
    $("view-mode").textContent = "1:1";
    $("view-mode").setAttribute("aria-pressed", "false");
    setSlider(50);
    $("result").hidden = false;
    encodeForZoom(state.file, state.beforeUrl);
  }

  // The zoom viewer (zoom.js) renders tiles from an encoding of the picked image, kept by the server.
  async function encodeForZoom(file, previewUrl) {
    if (!window.liif.onEncoding) return;
    const body = new FormData();
    body.append("image", file, file.name);
    $("zoom-note").textContent = "encoding the image for the zoom viewer";
    try {
      const r = await fetch("/v1/encodings", { method: "POST", body });
      const made = await r.json();
      if (!r.ok) throw new Error(made.error || `error ${r.status}`);
      forgetEncoding();
      state.encoding = made.id;
      $("zoom-note").textContent = "";
      window.liif.onEncoding(made.id, made.width, made.height, previewUrl);
    } catch (err) {
      $("zoom-note").textContent = `no zoom viewer: ${err.message}`;
    }
  }

  function forgetEncoding() { // free the server's memory as soon as the page no longer needs it
    if (state.encoding) fetch(`/v1/encodings/${state.encoding}`, { method: "DELETE", keepalive: true }).catch(() => {});
    state.encoding = null;
  }
  window.addEventListener("pagehide", forgetEncoding);

  $("options").addEventListener("submit", upscale);
  window.liif = {
    onEncoding: null, // set by zoom.js: (id, width, height, previewUrl) once an encoding exists
  };
})();
