/* The storyboard page: frames' status live, a frame's versions, regenerate from here. */
(function () {
  "use strict";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const POLL_MS = 1000;
  const FINISHED = ["succeeded", "failed", "canceled"];

  function thumbUrl(image) {
    return image ? image.thumbnail_url : "";
  }

  function renderFrame(li, frame) {
    li.dataset.status = frame.status;
    const badge = $("[data-testid=frame-status]", li);
    badge.textContent = frame.status;
    badge.className = `badge badge-${frame.status}`;
    const holder = $(".frame-thumb", li);
    const url = thumbUrl(frame.image);
    const img = $("img", holder);
    if (url && (!img || img.dataset.image !== frame.image.id)) {
      holder.innerHTML = "";
      const pic = document.createElement("img");
      pic.src = url;
      pic.alt = `Frame ${frame.index}`;
      pic.width = 120;
      pic.height = 120;
      pic.dataset.image = frame.image.id;
      holder.appendChild(pic);
    }
  }

  function renderPanel(root, series, index) {
    const panel = $("[data-testid=frame-panel]", root);
    const frame = series.frames[index];
    if (!frame) return;
    panel.hidden = false;
    panel.dataset.index = String(index);
    $("[data-testid=frame-panel-title]", panel).textContent = `Frame ${index}: ${frame.prompt}`;
    const list = $("[data-testid=frame-versions]", panel);
    list.innerHTML = "";
    frame.versions.forEach((v) => {
      const item = document.createElement("li");
      item.dataset.testid = "frame-version";
      item.dataset.number = String(v.number);
      item.textContent = `Version ${v.number} · ${v.cause} · ${v.status}`;
      if (v.image_id) {
        const a = document.createElement("a");
        a.href = `/images/${v.image_id}/`;
        a.textContent = " open";
        item.appendChild(a);
      }
      list.appendChild(item);
    });
    const form = $("[data-testid=regenerate-form]", panel);
    form.action = `${window.location.pathname}frames/${index}/regenerate/`;
    $$("button", form).forEach((b) => { b.disabled = !FINISHED.includes(series.status); });
  }

  async function load(root) {
    const response = await fetch(root.dataset.url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) return null;
    return response.json();
  }

  function setup(root) {
    let series = null;
    async function tick() {
      const fresh = await load(root).catch(() => null);
      if (fresh) {
        series = fresh;
        const status = $("[data-testid=series-status]");
        status.textContent = series.status.charAt(0).toUpperCase() + series.status.slice(1);
        status.className = `badge badge-${series.status}`;
        $$("[data-testid=frame]", root).forEach((li) => {
          const frame = series.frames[Number(li.dataset.index)];
          if (frame) renderFrame(li, frame);
        });
        const panel = $("[data-testid=frame-panel]", root);
        if (!panel.hidden) renderPanel(root, series, Number(panel.dataset.index));
        root.dataset.finished = String(FINISHED.includes(series.status));
      }
      if (!series || !FINISHED.includes(series.status)) window.setTimeout(tick, POLL_MS);
    }
    $$("[data-testid=frame-open]", root).forEach((button) => {
      button.addEventListener("click", async () => {
        const index = Number(button.closest("[data-testid=frame]").dataset.index);
        if (!series) series = await load(root);
        if (series) renderPanel(root, series, index);
      });
    });
    tick();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("storyboard");
    if (root) setup(root);
  });
})();
