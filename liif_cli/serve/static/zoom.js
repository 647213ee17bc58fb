// The zoom viewer: pans and zooms the continuous image from 1x to 64x (screen pixels per input pixel).
// What is on screen is cut into 256x256 tiles of device pixels; each tile is one IIIF Image API request
// (the server's /iiif/3, the same protocol any IIIF viewer uses): at zoom Z (device pixels per input pixel)
// the tiles come from the identifier `{id}@{K}x`, K the power of two at or above Z (up to 32), as
// /iiif/3/{id}@{K}x/{x,y,w,h}/^{w},{h}/0/default.png, the region in that magnified image's pixels. At zoom
// 1 or less they are the source pixels (K = 1, no model); above, LIIF region renders of the server's cached
// encoding, so a zoomed view costs what the screen shows, never the whole image at that magnification.
// Tiles are kept in the page (an LRU of object URLs); requests for tiles that left the screen are aborted
// (the server then cancels the job). Meanwhile the original, stretched by the browser, stands in as a
// backdrop. No libraries.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const TILE = 256; // device pixels a side
  const STEPS = 4; // zoom levels per doubling: level k is 2^(k/4)
  const MAX_LEVEL = 6 * STEPS; // 64x
  const IN_FLIGHT = 4; // tile requests at once: the server renders one job per device anyway
  const KEEP = 300; // tiles kept in the page
  const MAX_K = 32; // the server's largest @Kx

  const view = $("zoom-view");
  const layer = $("zoom-tiles");
  const backdrop = $("zoom-backdrop");
  const state = { id: null, w: 0, h: 0, level: 0, cx: 0, cy: 0, drag: null, timer: 0 };
  const cache = new Map(); // key -> {img, url, controller, loaded, failed}
  let pending = []; // keys waiting for a free request slot, nearest the centre first
  let active = 0;

  const zoom = () => Math.pow(2, state.level / STEPS);
  const dpr = () => window.devicePixelRatio || 1;
  const label = (z) => `${Number(z.toFixed(z < 10 ? 2 : 1))}x`;

  function clampCentre() {
    state.cx = Math.min(Math.max(state.cx, 0), state.w);
    state.cy = Math.min(Math.max(state.cy, 0), state.h);
  }

  // Screen geometry of the current view: the image's origin on screen (CSS px) and its size (device px).
  function geometry() {
    const z = zoom();
    const r = dpr();
    const vw = view.clientWidth;
    const vh = view.clientHeight;
    return {
      z, r, vw, vh,
      ox: Math.round(vw / 2 - state.cx * z),
      oy: Math.round(vh / 2 - state.cy * z),
      wd: Math.max(1, Math.floor(state.w * z * r)), // the whole image at this zoom, in device pixels
      hd: Math.max(1, Math.floor(state.h * z * r)),
    };
  }

  function tileUrl(g, i, j) {
    const x0 = i * TILE, y0 = j * TILE;
    const w = Math.min(TILE, g.wd - x0), h = Math.min(TILE, g.hd - y0);
    const zd = g.z * g.r; // device pixels per input pixel
    let k = 1; // the IIIF identifier's magnification: the power of two at or above the zoom
    while (k < zd - 1e-9 && k < MAX_K) k *= 2;
    const f = k / zd; // pixels of the magnified image per device pixel (1 at the powers of two)
    const rx = Math.round(x0 * f), ry = Math.round(y0 * f);
    const rw = Math.max(1, Math.min(Math.round((x0 + w) * f), state.w * k) - rx);
    const rh = Math.max(1, Math.min(Math.round((y0 + h) * f), state.h * k) - ry);
    const id = encodeURIComponent(state.id) + (k > 1 ? `@${k}x` : "");
    return { url: `/iiif/3/${id}/${rx},${ry},${rw},${rh}/^${w},${h}/0/default.png`, x0, y0, w, h };
  }

  function draw(immediate) {
    if (!state.id) return;
    const g = geometry();
    $("zoom-factor").textContent = label(g.z);
    $("zoom-in").disabled = state.level >= MAX_LEVEL;
    $("zoom-out").disabled = state.level <= 0;
    backdrop.style.left = `${g.ox}px`;
    backdrop.style.top = `${g.oy}px`;
    backdrop.style.width = `${state.w * g.z}px`;
    backdrop.style.height = `${state.h * g.z}px`;

    // The tiles under the view, in device pixels of the zoomed image.
    const i0 = Math.max(0, Math.floor((-g.ox * g.r) / TILE));
    const j0 = Math.max(0, Math.floor((-g.oy * g.r) / TILE));
    const i1 = Math.min(Math.ceil(g.wd / TILE), Math.ceil(((g.vw - g.ox) * g.r) / TILE));
    const j1 = Math.min(Math.ceil(g.hd / TILE), Math.ceil(((g.vh - g.oy) * g.r) / TILE));
    const wanted = new Set();
    const order = [];
    for (let j = j0; j < j1; j++) {
      for (let i = i0; i < i1; i++) {
        const key = `${state.id}/${state.level}/${g.r}/${i}/${j}`;
        wanted.add(key);
        const t = tileUrl(g, i, j);
        let tile = cache.get(key);
        if (!tile) {
          tile = { img: new Image(), t, controller: null, loaded: false, url: null, busy: 0, dead: false, later: false };
          tile.img.className = "zoom-tile";
          tile.img.alt = "";
          tile.img.draggable = false;
          tile.img.dataset.key = key;
          cache.set(key, tile);
        } else {
          cache.delete(key); // most recently used goes last
          cache.set(key, tile);
        }
        const img = tile.img;
        img.style.left = `${g.ox + t.x0 / g.r}px`;
        img.style.top = `${g.oy + t.y0 / g.r}px`;
        img.style.width = `${t.w / g.r}px`;
        img.style.height = `${t.h / g.r}px`;
        if (tile.loaded && img.parentNode !== layer) layer.appendChild(img);
        if (!tile.loaded && !tile.controller && !tile.dead && !tile.later) {
          const dx = (i + 0.5) * TILE - (g.vw / 2 - g.ox) * g.r, dy = (j + 0.5) * TILE - (g.vh / 2 - g.oy) * g.r;
          order.push([dx * dx + dy * dy, key]);
        }
      }
    }
    for (const img of Array.from(layer.children)) if (!wanted.has(img.dataset.key)) layer.removeChild(img);
    // Stale requests (tiles that left the screen, or another zoom level): abort them and forget the tile.
    for (const [key, tile] of cache) {
      if (!wanted.has(key) && !tile.loaded) { // a failed tile is asked again when it is back on screen
        if (tile.controller) tile.controller.abort();
        cache.delete(key);
      }
    }
    order.sort((a, b) => a[0] - b[0]);
    pending = order.map((o) => o[1]);
    trim();
    status();
    clearTimeout(state.timer);
    if (immediate) pump();
    else state.timer = setTimeout(pump, 60); // a burst of wheel or drag events asks only for where it ends
  }

  function pump() {
    while (active < IN_FLIGHT && pending.length) {
      const key = pending.shift();
      const tile = cache.get(key);
      if (!tile || tile.loaded || tile.controller) continue;
      load(key, tile);
    }
  }

  async function load(key, tile) {
    tile.controller = new AbortController();
    active++;
    let aborted = false;
    try {
      const r = await fetch(tile.t.url, { signal: tile.controller.signal });
      if (!r.ok) {
        let message = `error ${r.status}`;
        try { message = (await r.json()).error || message; } catch (_) { /* not JSON */ }
        throw Object.assign(new Error(message), { status: r.status, retry: Number(r.headers.get("Retry-After") || 1) });
      }
      const blob = await r.blob();
      tile.url = URL.createObjectURL(blob);
      tile.img.src = tile.url;
      await tile.img.decode();
      tile.loaded = true;
    } catch (err) {
      aborted = err.name === "AbortError";
      if (!aborted) {
        if (err.status === 429 && ++tile.busy < 5) { // the server is busy: ask again when it says
          tile.later = true;
          setTimeout(() => { tile.later = false; draw(true); }, err.retry * 1000);
        } else {
          tile.dead = true; // not asked again for this encoding (a 404 means it was evicted: upload again)
          $("zoom-error").textContent = err.message;
          $("zoom-error").hidden = false;
        }
      }
    } finally {
      tile.controller = null;
      const release = () => {
        active--;
        if (tile.loaded && cache.get(key) === tile) draw(true);
        else pump();
      };
      // The server notices an abort within a poll (0.1 s) and drops the job; until then it holds a place
      // in the queue, so the slot stays taken a little longer: the page never fills the queue (429).
      if (aborted) setTimeout(release, 300);
      else release();
    }
  }

  function trim() {
    for (const [key, tile] of cache) {
      if (cache.size <= KEEP) break;
      if (tile.img.parentNode === layer || tile.controller) continue;
      if (tile.url) URL.revokeObjectURL(tile.url);
      cache.delete(key);
    }
  }

  function status() {
    let shown = 0;
    let loading = pending.length;
    let failed = 0;
    for (const img of layer.children) if (img.complete && img.naturalWidth > 0) shown++;
    for (const tile of cache.values()) {
      if (tile.controller || tile.later) loading++;
      if (tile.dead) failed++;
    }
    $("zoom-status").textContent =
      `${shown} tiles on screen${loading ? `, ${loading} loading` : ""}${failed ? `, ${failed} failed` : ""}`;
  }

  // Zoom to `level`, keeping the input point under the screen point (px, py) (CSS px in the view) still.
  function zoomTo(level, px, py) {
    level = Math.min(Math.max(Math.round(level), 0), MAX_LEVEL);
    if (level === state.level || !state.id) return;
    const g = geometry();
    px = px === undefined ? g.vw / 2 : px;
    py = py === undefined ? g.vh / 2 : py;
    const ix = (px - g.ox) / g.z, iy = (py - g.oy) / g.z;
    state.level = level;
    const z = zoom();
    state.cx = ix - (px - g.vw / 2) / z;
    state.cy = iy - (py - g.vh / 2) / z;
    clampCentre();
    draw();
  }

  view.addEventListener("wheel", (e) => {
    e.preventDefault();
    // One level per mouse notch (about 100 px of delta); a trackpad's many small deltas add up to the same.
    state.wheel = (state.wheel || 0) + e.deltaY * (e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? 400 : 1);
    if (Math.abs(state.wheel) < 50) return;
    const box = view.getBoundingClientRect();
    zoomTo(state.level - Math.sign(state.wheel), e.clientX - box.left, e.clientY - box.top);
    state.wheel = 0;
  }, { passive: false });
  view.addEventListener("pointerdown", (e) => {
    state.drag = { x: e.clientX, y: e.clientY, cx: state.cx, cy: state.cy };
    view.setPointerCapture(e.pointerId);
    view.classList.add("dragging");
  });
  view.addEventListener("pointermove", (e) => {
    if (!state.drag) return;
    const z = zoom();
    state.cx = state.drag.cx - (e.clientX - state.drag.x) / z;
    state.cy = state.drag.cy - (e.clientY - state.drag.y) / z;
    clampCentre();
    draw();
  });
  const endDrag = () => { state.drag = null; view.classList.remove("dragging"); };
  view.addEventListener("pointerup", endDrag);
  view.addEventListener("pointercancel", endDrag);
  view.addEventListener("keydown", (e) => {
    if (e.key === "+" || e.key === "=") zoomTo(state.level + 1);
    else if (e.key === "-") zoomTo(state.level - 1);
  });
  $("zoom-in").addEventListener("click", () => zoomTo(state.level + STEPS));
  $("zoom-out").addEventListener("click", () => zoomTo(state.level - STEPS));
  $("zoom-one").addEventListener("click", () => zoomTo(0));
  window.addEventListener("resize", draw);

  function reset() {
    for (const tile of cache.values()) {
      if (tile.controller) tile.controller.abort();
      if (tile.url) URL.revokeObjectURL(tile.url);
    }
    cache.clear();
    pending = [];
    layer.replaceChildren();
    $("zoom-error").hidden = true;
  }

  // Entry point, called by app.js once POST /v1/encodings has answered for the picked image.
  window.liif.onEncoding = function (id, width, height, previewUrl) {
    reset();
    Object.assign(state, { id, w: width, h: height, cx: width / 2, cy: height / 2 });
    backdrop.src = previewUrl;
    $("zoom-viewer").hidden = false;
    $("zoom-size").textContent = `(${width}x${height})`;
    // Start at the largest level that shows the whole image (at least 1x).
    const fit = Math.min(view.clientWidth / width, view.clientHeight / height);
    state.level = Math.min(MAX_LEVEL, Math.max(0, Math.floor(Math.log2(fit) * STEPS)));
    draw();
  };
  window.liif.zoomTo = (factor) => zoomTo(Math.log2(factor) * STEPS); // for tests and the console
})();
