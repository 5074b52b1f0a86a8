/* Bunch dashboard: small progressive enhancements, no build step. */
(function () {
  "use strict";

  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const POLL_MS = 800;
  const BATCH_POLL_MS = 1500;

  // The REST API accepts the dashboard session; errors come in one shape.
  async function api(path, options) {
    const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    opts.headers["X-CSRFToken"] = csrf();
    opts.headers["Accept"] = "application/json";
    if (opts.json !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
    }
    let response;
    try {
      response = await fetch(path, opts);
    } catch (e) {
      throw new Error("We couldn't reach Bunch. Check your connection and try again.");
    }
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const error = body && body.error;
      const message = error ? friendly(error) : `Something went wrong (HTTP ${response.status}). Try again.`;
      const err = new Error(message);
      err.status = response.status;
      throw err;
    }
    return body;
  }

  function friendly(error) {
    if (error.fields) {
      const first = Object.values(error.fields)[0];
      if (Array.isArray(first) && first.length && typeof first[0] === "string" && error.code === "validation_error") {
        return `${Object.keys(error.fields)[0].replace("_", " ")}: ${first[0]}`;
      }
    }
    if (error.code === "rate_limited") return "You're going a bit fast. Wait a few seconds and try again.";
    if (error.code === "not_authenticated") return "Your session has ended. Reload the page and sign in again.";
    return error.message;
  }

  function busy(button, on) {
    if (!button) return;
    button.disabled = on;
    button.classList.toggle("is-loading", on);
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const FINISHED = ["succeeded", "failed", "canceled"];

  async function pollJob(url, onUpdate) {
    for (;;) {
      const job = await api(url);
      onUpdate(job);
      if (FINISHED.includes(job.status)) return job;
      await sleep(POLL_MS);
    }
  }

  // Follow a job through its event stream (GET …/events); poll only if the stream fails
  // before it ends (no EventSource, a proxy that buffers, the server refusing it).
  function followJob(job, onUpdate) {
    if (!window.EventSource) return pollJob(job.links.self, onUpdate);
    return new Promise((resolve) => {
      const current = Object.assign({}, job, { images: (job.images || []).slice() });
      const source = new EventSource(`${job.links.self}/events`);
      let fellBack = false;
      const fallBack = () => {
        if (fellBack) return;
        fellBack = true;
        source.close();
        resolve(pollJob(job.links.self, onUpdate));
      };
      source.addEventListener("status", (e) => { current.status = JSON.parse(e.data).status; onUpdate(current); });
      source.addEventListener("image", (e) => {
        const image = JSON.parse(e.data);
        if (!current.images.some((i) => i.id === image.id)) current.images.push(image);
        onUpdate(current);
      });
      source.addEventListener("done", (e) => { source.close(); const final = JSON.parse(e.data); onUpdate(final); resolve(final); });
      source.onerror = () => { if (source.readyState === EventSource.CLOSED) fallBack(); };
    });
  }

  // Copy buttons and confirmations ------------------------------------------------------
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const text = $(button.dataset.copy).textContent.trim();
    const label = $("span", button);
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents($(button.dataset.copy));
      const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      document.execCommand && document.execCommand("copy");
    }
    if (label) { label.textContent = "Copied"; setTimeout(() => { label.textContent = "Copy"; }, 1600); }
  });
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  // <select data-autosubmit>: choosing sends its form (no inline handlers: the CSP has none).
  document.addEventListener("change", (event) => {
    const field = event.target.closest("[data-autosubmit]");
    if (field && field.form) field.form.submit();
  });

  // The one money rule (core/money.py): per-image prices to 4 decimals and totals to the
  // cent; a bound ("up to", "per image") rounds up, a charge rounds half up.
  const ceil4 = (n) => Math.ceil(n * 1e4 - 1e-7) / 1e4;
  const unit = (n) => "$" + ceil4(n).toFixed(4);
  const upTo = (n) => "$" + (Math.ceil(n * 100 - 1e-7) / 100).toFixed(2);
  const charged = (n) => "$" + (Math.round(n * 100 + 1e-7) / 100).toFixed(2);

  // The most one image can cost (billing.pricing.estimate_image_cost, from the price sheet).
  function perImage(line, { prompt, kind, inputs }) {
    const bytes = new TextEncoder().encode(prompt.trim()).length + ((line.preset_bytes || {})[kind] || 0);
    return ceil4(Number(line.base) + inputs * Number(line.per_input_image) + bytes * Number(line.per_prompt_byte));
  }

  // Generate ------------------------------------------------------------------------------
  function setupGenerate(form) {
    const sheet = JSON.parse($("#price-sheet").textContent);
    const presets = JSON.parse($("#presets").textContent);
    const maxInputs = Number(form.dataset.maxInputs);
    const prompt = $("#prompt", form);
    const count = $("#count", form);
    const refs = [];  // {id, url, el}

    function selected(name) { const el = $(`input[name="${name}"]:checked`, form); return el ? el.value : null; }

    function showExamples() {
      const kind = selected("kind");
      const box = $("#examples");
      box.innerHTML = "";
      presets[kind].examples.forEach((text) => {
        const chip = document.createElement("button");
        chip.type = "button"; chip.className = "chip"; chip.textContent = text;
        chip.addEventListener("click", () => { prompt.value = text; prompt.focus(); updateCost(); });
        box.appendChild(chip);
      });
      const ratio = $(`input[name="aspect_ratio"][value="${presets[kind].ratio}"]`, form);
      if (ratio) ratio.checked = true;
    }

    function updateCost() {
      const tier = selected("model");
      const line = sheet[tier];
      const n = Number(count.value);
      if (!line) { $("#cost").textContent = "—"; return; }
      if (!Number.isInteger(n) || n < Number(count.min) || n > Number(count.max)) {
        $("#cost").textContent = "—";
        $("#cost-detail").textContent = `Choose ${count.min} to ${count.max} images per job.`;
        return;
      }
      const what = { prompt: prompt.value, kind: selected("kind"), inputs: refs.length };
      // Each model's card shows the same per-image figure as the cost line.
      Object.entries(sheet).forEach(([t, l]) => {
        const card = $(`[data-tier-price="${t}"]`, form);
        if (card) card.textContent = unit(perImage(l, what));
      });
      // Per image rounded up first, so "n × each" is exactly what the total says.
      const shown = perImage(line, what);
      $("#cost").textContent = upTo(shown * n);
      $("#cost-detail").textContent = `Up to ${n} × ${unit(shown)} per image${refs.length ? `, ${refs.length} reference image${refs.length > 1 ? "s" : ""}` : ""}. Charged only for images actually made.`;
    }

    async function addFiles(files) {
      const error = $("#form-error");
      error.textContent = "";
      for (const file of files) {
        if (refs.length >= maxInputs) { error.textContent = `At most ${maxInputs} reference images.`; break; }
        const el = document.createElement("div");
        el.className = "ref is-uploading";
        el.innerHTML = `<img alt=""><button type="button" aria-label="Remove">×</button>`;
        $("img", el).src = URL.createObjectURL(file);
        $("#refs").appendChild(el);
        const ref = { id: null, el };
        refs.push(ref);
        $("button", el).addEventListener("click", () => { refs.splice(refs.indexOf(ref), 1); el.remove(); updateCost(); });
        const data = new FormData();
        data.append("file", file);
        try {
          const image = await api("/api/v1/images", { method: "POST", body: data });
          ref.id = image.id;
          el.classList.remove("is-uploading");
        } catch (e) {
          refs.splice(refs.indexOf(ref), 1); el.remove();
          error.textContent = `${file.name}: ${e.message}`;
        }
        updateCost();
      }
    }

    function renderJob(job) {
      $("#job-empty").hidden = true;
      $("#job-live").hidden = false;
      const badge = $("#job-badge");
      badge.textContent = job.status;
      badge.className = `badge badge-${job.status}`;
      const done = job.images.length;
      const finished = !["queued", "running"].includes(job.status);
      const text = {
        queued: startsIn(job) || "Waiting for a worker…",
        running: `Making image ${Math.min(done + 1, job.count)} of ${job.count}…`,
        succeeded: `Done: ${done} image${done === 1 ? "" : "s"}.`,
        failed: done ? `Failed after ${done} of ${job.count} image${job.count === 1 ? "" : "s"}.` : "The job failed.",
        canceled: "Canceled.",
      }[job.status] || job.status;
      $("#job-text").textContent = text;
      const cost = Number(job.actual_cost);
      $("#job-cost").textContent = !finished ? `Up to ${upTo(Number(job.estimated_cost))}`
        : cost > 0 ? `Cost ${charged(cost)}` : "Nothing was charged";
      $("#job-progress").style.width = finished ? `${(done / job.count) * 100}%`
        : `${Math.max(job.status === "queued" ? 4 : 12, (done / job.count) * 100)}%`;
      $("#job-retry").hidden = job.status !== "failed";
      const slots = $("#slots");
      while (slots.children.length < job.count) {
        const slot = document.createElement("div");
        slot.className = "slot is-waiting";
        slots.appendChild(slot);
      }
      job.images.forEach((image, i) => {
        const slot = slots.children[i];
        if (slot.dataset.image === image.id) return;
        slot.dataset.image = image.id;
        slot.className = "slot";
        slot.innerHTML = `<a href="/images/${image.id}/" data-testid="result"><img alt="Generated image ${i + 1}"></a>`;
        $("img", slot).src = image.thumbnail_url;
      });
      if (job.status !== "queued" && job.status !== "running") {
        $$(".slot.is-waiting", slots).forEach((s) => { s.className = "slot"; s.innerHTML = '<span class="muted small">not made</span>'; });
      }
      $("#job-error").textContent = job.error ? job.error.message : "";
    }

    form.addEventListener("change", (e) => {
      if (e.target.name === "kind") showExamples();
      updateCost();
    });
    prompt.addEventListener("input", updateCost);
    count.addEventListener("input", updateCost);
    $$(".counter button", form).forEach((b) => b.addEventListener("click", () => {
      count.value = Math.min(Math.max((parseInt(count.value, 10) || 1) + Number(b.dataset.step), 1), Number(count.max));
      updateCost();
    }));
    const input = $("#refs-input");
    input.addEventListener("change", () => { addFiles(Array.from(input.files)); input.value = ""; });
    const zone = $("#dropzone");
    ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("is-over"); }));
    ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("is-over")));
    zone.addEventListener("drop", (e) => { e.preventDefault(); addFiles(Array.from(e.dataTransfer.files)); });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = $("#form-error");
      error.textContent = "";
      if (!prompt.value.trim()) { error.textContent = "Write a prompt first — or pick one of the examples."; prompt.focus(); return; }
      if (refs.some((r) => !r.id)) { error.textContent = "Wait for the reference images to finish uploading."; return; }
      const button = $("#submit");
      busy(button, true);
      $("#slots").innerHTML = "";
      try {
        const job = await api("/api/v1/generations", {
          method: "POST",
          json: {
            prompt: prompt.value,
            kind: selected("kind"),
            aspect_ratio: selected("aspect_ratio"),
            count: parseInt(count.value, 10) || 1,
            model: selected("model"),
            input_images: refs.map((r) => r.id),
          },
        });
        renderJob(job);
        if (window.innerWidth < 1100) $("#job-panel").scrollIntoView({ behavior: "smooth" });
        busy(button, false);
        await followJob(job, renderJob);
      } catch (e) {
        error.textContent = e.message;
      } finally {
        busy(button, false);
      }
    });

    $("#job-retry").addEventListener("click", () => form.requestSubmit());

    showExamples();
    updateCost();
  }

  // "Starts in about N s" for a queued job, from its `queue` estimate (null when unknown).
  function startsIn(job) {
    if (!job.queue) return "";
    const seconds = Math.round((Date.parse(job.queue.estimated_start_at) - Date.now()) / 1000);
    const ahead = job.queue.position ? ` · ${job.queue.position} of your jobs ahead` : "";
    return seconds <= 1 ? `Starting…${ahead}` : `Starts in about ${seconds} s${ahead}`;
  }

  // Edit an image -------------------------------------------------------------------------
  function setupEdit(form) {
    const sheet = JSON.parse($("#price-sheet").textContent);
    const model = $("#edit-model");
    const instruction = $("#instruction", form);
    function updateEditCost() {
      const line = sheet[model.value];
      if (!line) { $("#edit-cost").textContent = ""; return; }
      // The edited image goes to the model as an input image.
      const each = perImage(line, { prompt: instruction.value, kind: form.dataset.kind, inputs: 1 });
      $("#edit-cost").textContent = `Up to ${unit(each)} for the new version. Charged only if it is made.`;
    }
    model.addEventListener("change", updateEditCost);
    instruction.addEventListener("input", updateEditCost);
    updateEditCost();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = $("#edit-error");
      const instruction = $("#instruction", form);
      error.textContent = "";
      if (!instruction.value.trim()) { error.textContent = "Say what to change first."; instruction.focus(); return; }
      const button = $("#edit-submit");
      busy(button, true);
      const badge = $("#edit-badge");
      try {
        const job = await api(`/api/v1/images/${form.dataset.image}/edits`, {
          method: "POST",
          json: { instruction: instruction.value, model: $("#edit-model").value },
        });
        $("#edit-status").hidden = false;
        const final = await followJob(job, (j) => {
          badge.textContent = j.status;
          badge.className = `badge badge-${j.status}`;
          $("#edit-text").textContent = j.status === "succeeded" ? "Done — opening the new version…" : (j.status === "queued" && startsIn(j)) || "Working on it…";
        });
        if (final.status === "succeeded" && final.images.length) {
          window.location.assign(`/images/${final.images[0].id}/`);
          return;
        }
        error.textContent = final.error ? final.error.message : "The edit didn't produce an image. Try rewording it.";
      } catch (e) {
        error.textContent = e.message;
      }
      busy(button, false);
    });
  }


  // Edit conversation: a turn still running is followed live (its job's event stream, as
  // an edit is); the page, server-rendered, is read again once it has finished.
  function setupConversation(panel) {
    $$("[data-live-job]", panel).forEach((row) => {
      const badge = $("[data-testid=turn-status]", row);
      followJob({ links: { self: row.dataset.liveJob } }, (job) => {
        badge.textContent = job.status;
        badge.className = `badge badge-${job.status}`;
      }).then(() => window.location.reload());
    });
  }

  // Templates: live preview ------------------------------------------------------------------
  // Mirrors batches/prompts.py: {name} is a variable, {{ and }} are literal braces.
  function templateVariables(text) {
    const names = [];
    text.replace(/\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name) => { if (name && !names.includes(name)) names.push(name); return m; });
    return names;
  }
  function templateRender(text, values) {
    return text.replace(/\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name) => {
      if (m === "{{") return "{";
      if (m === "}}") return "}";
      return values[name] && values[name].trim() ? values[name] : `{${name}}`;
    });
  }
  function parsePairs(line) {
    const out = {};
    line.split("|").forEach((part) => { const i = part.indexOf("="); if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim(); });
    return out;
  }
  function parseLocales(text) {
    return text.split("\n").filter((l) => l.trim()).map((line) => {
      const i = line.indexOf("|");
      return { locale: (i < 0 ? line : line.slice(0, i)).trim(), values: i < 0 ? {} : parsePairs(line.slice(i + 1)) };
    });
  }

  function setupTemplateForm(form) {
    const text = $("#id_text", form);
    const defaults = $("#id_defaults", form);
    const locales = $("#id_locales", form);
    const vars = $("#preview-vars");
    const select = $("#preview-locale");
    const samples = {};

    function update() {
      const names = templateVariables(text.value);
      const base = {};
      defaults.value.split("\n").forEach((line) => Object.assign(base, parsePairs(line)));
      $$("input", vars).forEach((input) => { if (!names.includes(input.dataset.name)) input.closest(".field").remove(); });
      names.forEach((name) => {
        if ($(`input[data-name="${name}"]`, vars)) return;
        const field = document.createElement("div");
        field.className = "field";
        field.innerHTML = `<label></label><input type="text" data-name="${name}" data-testid="sample-${name}">`;
        $("label", field).textContent = name;
        const input = $("input", field);
        input.value = samples[name] || "";
        input.placeholder = base[name] ? `default: ${base[name]}` : "sample value";
        input.addEventListener("input", () => { samples[name] = input.value; render(); });
        vars.appendChild(field);
      });
      const entries = parseLocales(locales.value);
      const chosen = select.value;
      select.innerHTML = '<option value="">(none)</option>';
      entries.forEach((e) => { const o = document.createElement("option"); o.value = o.textContent = e.locale; select.appendChild(o); });
      select.value = entries.some((e) => e.locale === chosen) ? chosen : (entries[0] ? entries[0].locale : "");
      render();

      function render() {
        const entry = entries.find((e) => e.locale === select.value);
        const values = Object.assign({}, base, Object.fromEntries(Object.entries(samples).filter(([, v]) => v.trim())), entry ? entry.values : {});
        $("#preview-text").textContent = names.length ? templateRender(text.value, values) : "Add a {variable} to the prompt.";
        const missing = names.filter((n) => !(values[n] && values[n].trim()));
        $("#preview-missing").textContent = missing.length ? `Missing: ${missing.join(", ")}` : "";
      }
    }
    [text, defaults, locales].forEach((el) => el.addEventListener("input", update));
    select.addEventListener("change", update);
    update();
  }

  // New batch: source ------------------------------------------------------------------------
  function setupSource(form) {
    const perTemplate = JSON.parse($("#template-locales").textContent);
    const template = $("#id_template", form);
    const rows = $("#id_rows", form);

    function showSource() {
      const source = ($('input[name="source"]:checked', form) || {}).value;
      $$("[data-for-source]", form).forEach((el) => { el.hidden = el.dataset.forSource !== source; });
    }
    function showLocales(tick) {
      const codes = perTemplate[template.value] || [];
      $$("[data-locale]", form).forEach((label) => {
        const on = codes.includes(label.dataset.locale);
        label.hidden = !on;
        const box = $("input", label);
        if (!on) box.checked = false; else if (tick) box.checked = true;
      });
    }
    form.addEventListener("change", (e) => {
      if (e.target.name === "source") showSource();
      if (e.target === template) showLocales(true);
    });
    showSource();
    showLocales(!$$('[data-locale] input:checked', form).length);

    const input = $("#batch-refs-input");
    const zone = $("#batch-dropzone");
    async function addImages(files) {
      const error = $("#refs-error");
      error.textContent = "";
      for (const file of files) {
        const data = new FormData();
        data.append("file", file);
        try {
          const image = await api("/api/v1/images", { method: "POST", body: data });
          if (!rows.value.trim()) rows.value = "image,prompt\n";
          if (!rows.value.endsWith("\n")) rows.value += "\n";
          rows.value += `${image.id},\n`;
        } catch (e) {
          error.textContent = `${file.name}: ${e.message}`;
        }
      }
    }
    input.addEventListener("change", () => { addImages(Array.from(input.files)); input.value = ""; });
    ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("is-over"); }));
    ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("is-over")));
    zone.addEventListener("drop", (e) => { e.preventDefault(); addImages(Array.from(e.dataTransfer.files)); });
  }

  // New batch: submit once. The server makes one batch per draft whatever is sent; this only
  // spares the second click a round trip.
  function setupSubmitOnce(form) {
    form.addEventListener("submit", (event) => {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      const button = $("#batch-submit", form);
      setTimeout(() => busy(button, true), 0);  // after the browser has read the form
    });
  }

  // Batch page: live progress ----------------------------------------------------------------
  // watchBatch(url, onUpdate) calls onUpdate(batch) until the batch is finished. It follows
  // the batch's event stream (GET <url>/events): each `status` or `progress` event reads the
  // batch once (the page also shows costs and locales), `done` carries the final batch. If
  // the stream fails before `done` (no EventSource, a buffering proxy), it polls instead.
  async function pollBatch(url, onUpdate) {
    for (;;) {
      const batch = await api(url);
      await onUpdate(batch);
      if (FINISHED.includes(batch.status)) return batch;
      await sleep(BATCH_POLL_MS);
    }
  }

  function watchBatch(url, onUpdate) {
    if (!window.EventSource) return pollBatch(url, onUpdate);
    return new Promise((resolve, reject) => {
      const source = new EventSource(`${url}/events`);
      let fellBack = false;
      let reading = Promise.resolve();
      const fallBack = () => {
        if (fellBack) return;
        fellBack = true;
        source.close();
        pollBatch(url, onUpdate).then(resolve, reject);
      };
      const refresh = () => { reading = reading.then(async () => onUpdate(await api(url))).catch(() => {}); };
      source.addEventListener("status", refresh);
      source.addEventListener("progress", refresh);
      source.addEventListener("done", (e) => {
        source.close();
        const final = JSON.parse(e.data);
        reading.then(() => onUpdate(final)).then(() => resolve(final), reject);
      });
      source.onerror = () => { if (source.readyState === EventSource.CLOSED) fallBack(); };
    });
  }

  function setupBatch(root) {
    const counts = $("[data-testid=batch-counts]");
    async function render(batch) {
      const p = batch.progress;
      const badge = $("[data-testid=batch-status]");
      badge.textContent = batch.status.charAt(0).toUpperCase() + batch.status.slice(1);
      badge.className = `badge badge-${batch.status}`;
      const bar = $("[data-testid=batch-progress]");
      bar.setAttribute("aria-valuenow", p.percent);
      $("div", bar).style.width = `${p.percent}%`;
      counts.textContent = `${p.succeeded} succeeded · ${p.failed} failed · ${p.queued + p.running} waiting · ${p.canceled} canceled`;
      $("[data-testid=batch-images]").textContent = `${p.images_made} / ${batch.total_images}`;
      $("[data-testid=batch-cost]").textContent = charged(Number(batch.actual_cost));
      const lines = $("[data-testid=locale-summary]");
      if (batch.locales && batch.locales.length) {
        lines.closest(".card").hidden = false;
        lines.innerHTML = "";
        batch.locales.forEach((l) => {
          const li = document.createElement("li");
          li.dataset.locale = l.locale;
          li.textContent = l.line;
          if (l.failed) li.className = "has-failed"; else if (l.finished === l.total) li.className = "is-done";
          lines.appendChild(li);
        });
      }
      $("#retry-form").hidden = !(p.failed > 0 && ["succeeded", "failed", "canceled"].includes(batch.status));
      await renderItems();
    }
    async function renderItems() {
      const rows = $$("#item-rows tr");
      if (!rows.length) return;
      if (Number(rows[0].dataset.index) !== 0) return;  // later pages: progress only
      const page = await api(`${root.dataset.items}?limit=${rows.length}`);
      const byIndex = {};
      (page.results || []).forEach((item) => { byIndex[item.index] = item; });
      rows.forEach((tr) => {
        const item = byIndex[tr.dataset.index];
        if (!item) return;
        const job = item.job;
        $(".item-status", tr).innerHTML = `<span class="badge badge-${job.status}">${job.status}</span>${job.error ? `<div class="muted small"></div>` : ""}`;
        if (job.error) $(".item-status .small", tr).textContent = job.error.code;
        const cell = $(".item-images", tr);
        if (cell.dataset.count === String(job.images.length)) return;
        cell.dataset.count = String(job.images.length);
        cell.innerHTML = "";
        job.images.forEach((image, i) => {
          const a = document.createElement("a");
          a.href = `/images/${image.id}/`;
          a.dataset.testid = "item-thumb";
          a.className = "item-thumb";
          a.innerHTML = `<img alt="Image ${i + 1}" width="48" height="48">`;
          $("img", a).src = image.thumbnail_url;
          cell.appendChild(a);
        });
      });
    }
    if (root.dataset.finished === "true") { renderItems().catch(() => {}); return; }
    watchBatch(root.dataset.url, render).then(() => {
      const cancel = $("[data-testid=cancel]");
      if (cancel) cancel.closest("form").remove();
    }).catch((e) => { counts.textContent = e.message; });
  }

  // Gallery: select many ---------------------------------------------------------------------
  function setupGallerySelect(bar) {
    const boxes = () => $$("input[name=images]");
    function update() {
      const chosen = boxes().filter((b) => b.checked);
      $("#selected-count").textContent = chosen.length ? `${chosen.length} selected` : "Select images to download them or start a batch";
      $$("button, a.btn", bar).forEach((el) => { el.classList.toggle("is-disabled", !chosen.length); if (el.tagName === "BUTTON") el.disabled = !chosen.length; });
      $("#use-as-reference").href = `${bar.dataset.newBatch}?images=${chosen.map((b) => b.value).join(",")}`;
    }
    document.addEventListener("change", (e) => { if (e.target.name === "images") update(); });
    $("#use-as-reference").addEventListener("click", (e) => { if (!boxes().some((b) => b.checked)) e.preventDefault(); });
    update();
  }

  // Billing ---------------------------------------------------------------------------------
  function setupBilling() {
    $$("[data-billing]").forEach((button) => button.addEventListener("click", async () => {
      const error = $("#billing-error");
      error.textContent = "";
      busy(button, true);
      try {
        const kind = button.dataset.billing;
        const body = kind === "checkout" ? { plan: button.dataset.plan } : {};
        const result = await api(`/api/v1/billing/${kind}`, { method: "POST", json: body });
        window.location.assign(result.url);
      } catch (e) {
        error.textContent = e.status === 404 ? "Online billing isn't available yet. Contact us to change plan." : e.message;
        busy(button, false);
      }
    }));
  }

  // After Checkout the plan changes when Stripe's webhook lands: wait for it, then reload.
  function waitForPlanChange(banner) {
    let tries = 0;
    const check = async () => {
      tries += 1;
      try {
        const me = await api("/api/v1/me", { method: "GET" });
        if (me.tenant.plan.slug !== banner.dataset.plan) { window.location.replace("/usage/?plan=changed"); return; }
      } catch (e) { /* try again */ }
      if (tries < 90) setTimeout(check, 2000);
      else banner.textContent = "Payment received. Your plan has not changed yet: reload this page in a few minutes, or contact us.";
    };
    setTimeout(check, 1500);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const pending = $("#checkout-pending");
    if (pending) waitForPlanChange(pending);
    const gen = $("#generate-form");
    if (gen) setupGenerate(gen);
    const edit = $("#edit-form");
    if (edit) setupEdit(edit);
    const conversation = $("#conversation");
    if (conversation) setupConversation(conversation);
    setupBilling();
    const template = $("#template-form");
    if (template) setupTemplateForm(template);
    const source = $("#source-form");
    if (source) setupSource(source);
    const submit = $("#submit-form");
    if (submit) setupSubmitOnce(submit);
    const live = $("#batch-live");
    if (live) setupBatch(live);
    const select = $("#gallery-select");
    if (select) setupGallerySelect(select);
  });
})();
