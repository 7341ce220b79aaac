// Read aloud and dictation. The browser's own speech by default; with a model server
// (data-server="1") replies are read by its speech endpoint and answers recorded and
// transcribed by it. Nothing is ever sent to the conversation: the learner presses Send.
(function () {
  "use strict";

  var synth = window.speechSynthesis;
  var hasSynth = !!(synth && window.SpeechSynthesisUtterance);
  var Recognition = window.SpeechRecognition || window.webkitSpeechRecognition;
  var canRecord = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
  var RECORD_TYPES = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/mp4"];

  function config() { return document.getElementById("voice-config"); }
  function data(name) { var c = config(); return c ? c.getAttribute("data-" + name) || "" : ""; }
  function words(name) { return data("msg-" + name); }
  function server() { return data("server") === "1"; }
  function rate() {
    var r = parseFloat(data("rate"));
    return r >= 0.5 && r <= 2 ? r : 1;
  }
  function say(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  }
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (e) { return ""; }
  }
  // The language of a text: Hangul reads with a Korean voice, anything else with the page's
  // (an English-practice coach writes English even on a Korean page).
  function languageOf(text) {
    if (/[\uac00-\ud7a3]/.test(text)) { return "ko"; }
    var page = (document.documentElement.lang || "en").split("-")[0];
    return page === "ko" ? "en" : page;
  }
  function localeFor(lang) { return { ko: "ko-KR", en: "en-US" }[lang] || lang; }

  // --- read aloud -----------------------------------------------------------------------------

  var playing = null; // {button, audio}

  function stopReading() {
    if (playing) {
      if (playing.audio) { playing.audio.pause(); playing.audio.removeAttribute("src"); }
      playing.button.setAttribute("aria-pressed", "false");
      playing.button.textContent = words("read");
      playing = null;
    }
    if (hasSynth && (synth.speaking || synth.pending)) { synth.cancel(); }
  }

  function finished(button) {
    if (playing && playing.button === button) {
      button.setAttribute("aria-pressed", "false");
      button.textContent = words("read");
      playing = null;
    }
  }

  function failed(button) {
    finished(button);
    say("read-status", words("read-failed"));
  }

  function pickVoice(lang) {
    var voices = synth.getVoices();
    var locale = localeFor(lang).toLowerCase();
    var best = null;
    for (var i = 0; i < voices.length; i++) {
      var v = (voices[i].lang || "").toLowerCase().replace("_", "-");
      if (v === locale) { return voices[i]; }
      if (!best && v.split("-")[0] === lang) { best = voices[i]; }
    }
    return best;
  }

  function read(button) {
    var message = button.closest("[data-testid=message]");
    var body = message && message.querySelector(".body");
    var text = body ? body.textContent.trim() : "";
    if (!text) { return; }
    var wasMine = playing && playing.button === button;
    stopReading(); // one voice at a time: another message starting stops this one
    if (wasMine) { return; }
    playing = { button: button, audio: null };
    button.setAttribute("aria-pressed", "true");
    button.textContent = words("stop-reading");
    say("read-status", words("reading"));
    if (server()) {
      var audio = new Audio(button.getAttribute("data-src"));
      audio.playbackRate = rate();
      playing.audio = audio;
      audio.addEventListener("ended", function () { finished(button); });
      audio.addEventListener("error", function () { if (playing && playing.audio === audio) { failed(button); } });
      audio.play().catch(function () { if (playing && playing.audio === audio) { failed(button); } });
      return;
    }
    var utterance = new SpeechSynthesisUtterance(text);
    var lang = languageOf(text);
    utterance.lang = localeFor(lang);
    var voice = pickVoice(lang);
    if (voice) { utterance.voice = voice; }
    utterance.rate = rate();
    utterance.onend = function () { finished(button); };
    utterance.onerror = function (evt) {
      // "interrupted"/"canceled" is our own stop, not a failure.
      if (evt.error !== "interrupted" && evt.error !== "canceled") { failed(button); }
    };
    synth.speak(utterance);
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("button.read-aloud");
    if (button) { read(button); }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { stopReading(); }
  });
  window.addEventListener("pagehide", stopReading);

  // Auto-read: a coach message that finishes while the page is open is read once.
  var seen = {};
  function markSeen() {
    var shown = document.querySelectorAll("#messages [data-testid=message][data-role=assistant][data-status=complete]");
    for (var i = 0; i < shown.length; i++) { seen[shown[i].id] = true; }
  }
  document.addEventListener("htmx:wsAfterMessage", function () {
    if (data("auto-read") !== "1" || document.visibilityState === "hidden") { markSeen(); return; }
    var shown = document.querySelectorAll("#messages [data-testid=message][data-role=assistant][data-status=complete]");
    for (var i = 0; i < shown.length; i++) {
      if (!seen[shown[i].id]) {
        seen[shown[i].id] = true;
        var button = shown[i].querySelector("button.read-aloud");
        if (button && i === shown.length - 1) { read(button); }
      }
    }
  });

  // --- dictation ------------------------------------------------------------------------------

  var session = null; // {kind, stop(), started}

  function dictateButton() { return document.querySelector("[data-testid=dictate]"); }
  // The box a dictation fills and the field its seconds go to: the button names them
  // (the practice and room composer, or a class's answer box).
  function target(name, fallback) {
    var b = dictateButton();
    return document.getElementById((b && b.getAttribute("data-" + name)) || fallback);
  }
  function box() { return target("box", "composer-input"); }

  function setPressed(on) {
    var b = dictateButton();
    if (!b) { return; }
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.textContent = on ? words("stop-dictating") : words("dictate");
  }

  // Adds spoken seconds to the answer (two dictations into one answer add up).
  function addSeconds(seconds) {
    var field = target("seconds", "speech-seconds");
    if (!field || !(seconds > 0)) { return; }
    var total = (parseFloat(field.value) || 0) + seconds;
    field.value = String(Math.round(total * 100) / 100);
  }

  function insert(text) {
    var t = box();
    if (!t || !text) { return; }
    t.value = t.value.trim() ? t.value.trim() + " " + text : text;
    t.dispatchEvent(new Event("input", { bubbles: true }));
    t.focus();
  }

  function micProblem(err) {
    var name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError" || name === "not-allowed" || name === "service-not-allowed") {
      return words("denied");
    }
    if (name === "NotFoundError" || name === "audio-capture") { return words("no-mic"); }
    return words("failed");
  }

  function recognise() {
    var rec = new Recognition();
    rec.lang = localeFor((document.documentElement.lang || "en").split("-")[0]);
    rec.continuous = true;
    rec.interimResults = true;
    var t = box();
    var before = t ? t.value.trim() : "";
    var heard = false;
    var started = Date.now();
    session = { kind: "recognise", stop: function () { rec.stop(); } };
    rec.onresult = function (evt) {
      var text = "";
      for (var i = 0; i < evt.results.length; i++) { text += evt.results[i][0].transcript; }
      heard = heard || !!text.trim();
      // The live transcript goes straight into the box, editable before sending.
      if (t) { t.value = (before ? before + " " : "") + text.trim(); }
    };
    rec.onerror = function (evt) {
      if (evt.error !== "no-speech" && evt.error !== "aborted") { say("dictate-status", micProblem({ name: evt.error })); heard = null; }
    };
    rec.onend = function () {
      session = null;
      setPressed(false);
      if (heard) {
        addSeconds((Date.now() - started) / 1000);
        say("dictate-status", words("done"));
        if (t) { t.focus(); }
      } else if (heard === false) {
        say("dictate-status", words("nothing"));
      }
    };
    rec.start();
    setPressed(true);
    say("dictate-status", words("listening"));
  }

  function record() {
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var type = "";
      for (var i = 0; i < RECORD_TYPES.length; i++) {
        if (MediaRecorder.isTypeSupported(RECORD_TYPES[i])) { type = RECORD_TYPES[i]; break; }
      }
      var recorder = type ? new MediaRecorder(stream, { mimeType: type }) : new MediaRecorder(stream);
      var chunks = [];
      var started = Date.now();
      var limit = (parseInt(data("max-seconds"), 10) || 180) * 1000;
      var timer = setTimeout(function () { hitLimit = true; recorder.stop(); }, limit);
      var hitLimit = false;
      session = { kind: "record", stop: function () { if (recorder.state !== "inactive") { recorder.stop(); } } };
      recorder.ondataavailable = function (evt) { if (evt.data && evt.data.size) { chunks.push(evt.data); } };
      recorder.onstop = function () {
        clearTimeout(timer);
        stream.getTracks().forEach(function (track) { track.stop(); });
        session = null;
        setPressed(false);
        var seconds = (Date.now() - started) / 1000;
        var blob = new Blob(chunks, { type: recorder.mimeType || type || "audio/webm" });
        upload(blob, seconds, hitLimit);
      };
      recorder.start();
      setPressed(true);
      say("dictate-status", words("recording"));
    }).catch(function (err) {
      session = null;
      setPressed(false);
      say("dictate-status", micProblem(err));
    });
  }

  function upload(blob, seconds, hitLimit) {
    if (!blob.size) { say("dictate-status", words("nothing")); return; }
    say("dictate-status", (hitLimit ? words("limit") + " " : "") + words("transcribing"));
    var form = new FormData();
    var ext = /ogg/.test(blob.type) ? "ogg" : /mp4/.test(blob.type) ? "m4a" : "webm";
    form.append("audio", blob, "answer." + ext);
    form.append("duration", String(Math.round(seconds * 100) / 100));
    var button = dictateButton();
    if (button) { button.disabled = true; }
    fetch(data("transcribe-url"), {
      method: "POST",
      body: form,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() }
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (!response.ok) { throw new Error(json.error || words("failed")); }
        return json;
      });
    }).then(function (json) {
      if (!json.text) { say("dictate-status", words("nothing")); return; }
      insert(json.text);
      addSeconds(json.duration_seconds || seconds);
      say("dictate-status", words("done"));
    }).catch(function (err) {
      say("dictate-status", (err && err.message) || words("failed"));
    }).then(function () {
      if (button) { button.disabled = false; }
    });
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("[data-testid=dictate]");
    if (!button) { return; }
    if (session) { session.stop(); return; }
    stopReading(); // the coach's voice would be recorded too
    try {
      if (server() && canRecord) { record(); } else if (Recognition) { recognise(); }
    } catch (err) {
      session = null;
      setPressed(false);
      say("dictate-status", micProblem(err));
    }
  });

  // Which features this browser (or the model server) makes possible; CSS shows the buttons.
  var root = document.documentElement;
  function decide() {
    if (!config()) { return; }
    if (server() || hasSynth) { root.classList.add("can-read"); }
    if ((server() && canRecord) || Recognition) { root.classList.add("can-dictate"); }
    markSeen();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", decide);
  } else {
    decide();
  }
})();
