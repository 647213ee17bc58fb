// The page: pick or drop an image, POST it to /v1/upscale, show before/after with a slider, offer the file;
// then POST it to /v1/encodings and hand the id to the zoom viewer (zoom.js).
// No libraries, no network beyond this server.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { file: null, beforeUrl: null, afterUrl: null, encoding: null };

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
    $("before").style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
    $("divider").style.left = `${percent}%`;
  }
  $("slider").addEventListener("input", (e) => setSlider(Number(e.target.value)));

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
    xhr.open("POST", "/v1/upscale");
    xhr.responseType = "blob";
    $("go").disabled = true;
    $("progress-row").hidden = false;
    $("progress").max = 1;
    $("progress").value = 0;
    $("status").textContent = "uploading";
    showError("");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) $("progress").value = e.loaded / e.total;
    };
    xhr.upload.onload = () => {
      $("progress").removeAttribute("value"); // indeterminate while the server renders
      $("status").textContent = "upscaling";
    };
    xhr.onerror = () => finish("the server could not be reached");
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
    $("go").disabled = !state.file;
    $("progress-row").hidden = true;
    showError(error);
  }

  function show(blob, filename, size) {
    for (const url of [state.beforeUrl, state.afterUrl]) if (url) URL.revokeObjectURL(url);
    state.beforeUrl = URL.createObjectURL(state.file);
    state.afterUrl = URL.createObjectURL(blob);
    $("after").src = state.afterUrl;
    $("before").src = state.beforeUrl;
    $("result-size").textContent = size ? `(${size})` : "";
    const link = $("download");
    link.href = state.afterUrl;
    link.download = filename;
    link.textContent = `Download ${filename}`;
    $("slider").value = 50;
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
