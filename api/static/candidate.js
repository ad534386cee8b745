// The candidate's page (api/routes/candidate_page.py): drag and drop, upload with progress, the grading
// followed live, and the countdown. Our own file, no library; the page works without it (a plain form).
"use strict";

(function () {
  const page = document.getElementById("candidate-page");
  if (!page) return;
  const liveUrl = page.dataset.liveUrl;
  const uploadUrl = page.dataset.uploadUrl;
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const zone = document.getElementById("drop-zone");
  const chosen = document.getElementById("chosen-file");
  const button = document.getElementById("upload-button");
  const message = document.getElementById("upload-message");
  const cost = document.getElementById("upload-cost");
  const progress = document.getElementById("upload-progress");
  const bar = document.getElementById("upload-progress-bar");
  const KINDS = [".py", ".ipynb", ".zip"];

  let file = null;
  let idempotencyKey = null;
  let uploading = false;
  let pollTimer = null;
  let countdownTimer = null;
  let loadedAt = performance.now();

  function status() { return document.getElementById("status"); }
  function uploadsOpen() { const s = status(); return !!s && s.dataset.uploadsOpen === "true"; }

  function show(text, kind) {
    message.textContent = text;
    message.classList.toggle("hidden", !text);
    message.classList.toggle("info", kind === "info");
  }

  function sentence(text) { return text ? text.charAt(0).toUpperCase() + text.slice(1) : text; }

  function sizeText(bytes) {
    if (bytes < 1024) return bytes + " bytes";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
    return (bytes / 1048576).toFixed(1) + " MiB";
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function refreshControls() {
    const open = uploadsOpen();
    button.disabled = uploading || !open || !file;
    zone.classList.toggle("disabled", !open);
    input.disabled = !open || uploading;
    if (!open) cost.textContent = "";
  }

  function choose(candidate) {
    show("");
    if (!candidate) return;
    const name = candidate.name || "";
    const dot = name.lastIndexOf(".");
    const suffix = dot >= 0 ? name.slice(dot).toLowerCase() : "";
    if (!KINDS.includes(suffix)) {
      file = null;
      chosen.textContent = "";
      show(name + " is not a .py, .ipynb or .zip file. To send a folder, zip it first.");
      refreshControls();
      return;
    }
    file = candidate;
    idempotencyKey = newKey();  // one per chosen file: a retry of this upload never makes a second submission
    chosen.textContent = name + " (" + sizeText(candidate.size) + ")";
    refreshControls();
  }

  input.required = false;  // the script checks the choice itself (a dropped file is not in the input)
  form.noValidate = true;
  input.addEventListener("change", () => choose(input.files && input.files[0]));

  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    if (uploadsOpen()) zone.classList.add("dragging");
  }));
  ["dragleave", "dragend"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (!uploadsOpen()) return;
    const items = event.dataTransfer.items;
    if (items && items.length && items[0].webkitGetAsEntry && items[0].webkitGetAsEntry()
        && items[0].webkitGetAsEntry().isDirectory) {
      show("That is a folder: zip it first, then drop the .zip here.");
      return;
    }
    const files = event.dataTransfer.files;
    if (files.length !== 1) { show("Drop one file at a time."); return; }
    choose(files[0]);
  });
  // A file dropped beside the zone must not make the browser leave the page to show it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!file || uploading || !uploadsOpen()) return;
    upload(file);
  });

  function upload(chosenFile) {
    uploading = true;
    refreshControls();
    show("");
    progress.hidden = false;
    bar.style.width = "0%";
    const body = new FormData();
    body.append("file", chosenFile, chosenFile.name);
    const request = new XMLHttpRequest();
    request.open("POST", uploadUrl);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("Idempotency-Key", idempotencyKey);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) bar.style.width = Math.round(100 * event.loaded / event.total) + "%";
    });
    request.addEventListener("load", () => finished(request));
    request.addEventListener("error", () => {
      failed("The upload did not reach the server (the connection failed). Check your connection and upload again: "
             + "it will not count twice.");
    });
    request.send(body);
  }

  function finished(request) {
    let answer = null;
    try { answer = JSON.parse(request.responseText); } catch (error) { answer = null; }
    if (request.status === 200 || request.status === 202) {
      uploading = false;
      progress.hidden = true;
      file = null;
      input.value = "";
      chosen.textContent = "";
      show("Uploaded " + answer.filename + " as submission " + answer.id + ": its feedback appears below.", "info");
      refreshLive();
      return;
    }
    if (request.status === 401) { window.location.reload(); return; }
    failed(sentence(answer && answer.error ? answer.error : "The server answered " + request.status + ".")
           .replace(/\.?$/, "."));
    if (request.status === 403) refreshLive();
  }

  function failed(text) {
    uploading = false;
    progress.hidden = true;
    show(text);
    refreshControls();
  }

  function schedule(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(refreshLive, ms);
  }

  function refreshLive() {
    clearTimeout(pollTimer);
    fetch(liveUrl, { headers: { Accept: "text/html" }, cache: "no-store", credentials: "same-origin" })
      .then((response) => {
        if (response.status === 401) { window.location.reload(); return null; }
        if (!response.ok) throw new Error("status " + response.status);
        return response.text();
      })
      .then((html) => {
        if (html === null) return;
        // Our own page's parts, rendered and escaped on the server; a parsed document runs no script.
        const parts = new DOMParser().parseFromString(html, "text/html");
        for (const id of ["status", "submissions"]) {
          const fresh = parts.getElementById(id);
          const current = document.getElementById(id);
          if (fresh && current) current.replaceWith(document.adoptNode(fresh));
        }
        loadedAt = performance.now();
        afterLiveChanged();
      })
      .catch(() => schedule(5000));
  }

  function afterLiveChanged() {
    const s = status();
    refreshControls();
    localTimes();
    startCountdown();
    const left = document.getElementById("attempts-left");
    if (uploadsOpen() && left) {
      cost.textContent = "Each upload uses one of your attempts (" + left.textContent + " left); "
        + "a grading that fails on our side does not.";
    }
    schedule(s && s.dataset.grading === "true" ? 1500 : 30000);
  }

  function localTimes() {
    for (const id of ["deadline", "closes-at"]) {
      const element = document.getElementById(id);
      if (!element || element.nextElementSibling && element.nextElementSibling.classList.contains("local-time")) continue;
      const moment = new Date(element.getAttribute("datetime"));
      if (isNaN(moment)) continue;
      const local = document.createElement("span");
      local.className = "local-time";
      local.textContent = "your time: " + moment.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
      element.after(local);
    }
  }

  function startCountdown() {
    clearInterval(countdownTimer);
    const element = document.getElementById("time-left");
    if (!element) return;
    // Seconds left as the server counted them: the candidate's own clock may be wrong.
    const secondsLeft = Number(element.dataset.secondsLeft);
    const tick = () => {
      const left = Math.max(0, Math.round(secondsLeft - (performance.now() - loadedAt) / 1000));
      element.textContent = left > 0 ? duration(left) + " left" : "closing now";
      element.classList.toggle("urgent", left <= 600);
      if (left === 0) { clearInterval(countdownTimer); setTimeout(refreshLive, 1000); }
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
  }

  function duration(seconds) {
    const days = Math.floor(seconds / 86400);
    const hours = Math.floor(seconds % 86400 / 3600);
    const minutes = Math.floor(seconds % 3600 / 60);
    const rest = seconds % 60;
    if (days > 0) return days + " d " + hours + " h";
    if (hours > 0) return hours + " h " + String(minutes).padStart(2, "0") + " min";
    return minutes + ":" + String(rest).padStart(2, "0");
  }

  afterLiveChanged();
})();
