// Practalk's only script: small behaviours htmx does not cover. No inline scripts anywhere.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // The language select sends itself (its button is hidden on phones, where space is short).
  document.addEventListener("change", function (evt) {
    var t = evt.target;
    if (!t || t.id !== "language-select") { return; }
    var button = t.form.querySelector("button");
    if (button && getComputedStyle(button).display === "none") { t.form.requestSubmit(); }
  });

  // Times in the person's own time zone: the server reads this cookie.
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && document.cookie.indexOf("tz=" + tz) === -1) {
      document.cookie = "tz=" + encodeURIComponent(tz) + ";path=/;max-age=31536000;samesite=lax";
    }
  } catch (e) { /* old browser: server time zone it is */ }

  function chat() { return document.querySelector("[data-testid=chat]"); }

  function lastSeq() {
    var seqs = document.querySelectorAll("#messages [data-seq]");
    var max = 0;
    for (var i = 0; i < seqs.length; i++) {
      var n = parseInt(seqs[i].getAttribute("data-seq"), 10);
      if (n > max) { max = n; }
    }
    return max;
  }

  // Times read in the page's language (<html lang>, set by the server), not the browser's.
  function pageLocales() {
    var lang = document.documentElement.lang;
    return lang ? [lang] : [];
  }

  function clock(d) {
    return d.toLocaleTimeString(pageLocales(), { hour: "2-digit", minute: "2-digit" });
  }

  // Whole days between today and d, in the reader's zone (0 today, 1 tomorrow).
  function dayOffset(d) {
    var a = new Date(); a.setHours(0, 0, 0, 0);
    var b = new Date(d.getTime()); b.setHours(0, 0, 0, 0);
    return Math.round((b - a) / 86400000);
  }

  // A moment with its day ("tomorrow 09:00"), for the quota's reset.
  function dayAndClock(d) {
    var day;
    try {
      day = new Intl.RelativeTimeFormat(pageLocales(), { numeric: "auto" }).format(dayOffset(d), "day");
    } catch (e) { day = d.toLocaleDateString(pageLocales()); }
    return day + " " + clock(d);
  }

  // Each <time> is localised once, when it arrives: rewriting them all on every frame
  // flooded the live region (and screen readers) with text changes during a reply.
  function localiseTimes(root) {
    var times = (root || document).querySelectorAll("time[datetime]:not([data-localised])");
    for (var i = 0; i < times.length; i++) {
      times[i].setAttribute("data-localised", "");
      var d = new Date(times[i].getAttribute("datetime"));
      if (isNaN(d) || times[i].hasAttribute("data-keep")) { continue; }
      if (times[i].hasAttribute("data-reset")) {
        times[i].textContent = dayAndClock(d);
        times[i].title = d.toLocaleString(pageLocales(), { dateStyle: "full", timeStyle: "short" });
      } else {
        times[i].textContent = clock(d);
      }
    }
  }

  // With no AI replies left, practice cannot send (told before typing); rooms still can.
  function syncQuota() {
    var box = document.getElementById("quota-box");
    var hint = document.getElementById("quota-empty");
    if (!box || !hint) { return; }
    var empty = box.getAttribute("data-remaining") === "0";
    hint.hidden = !empty;
    var form = document.getElementById("composer");
    var send = form && form.querySelector("[data-testid=send]");
    if (send && form.hasAttribute("data-needs-coach")) { send.disabled = empty; }
  }

  function composerBlocked(form) {
    var send = form && form.querySelector("[data-testid=send]");
    return !!(send && send.disabled);
  }

  function scrollToEnd(force) {
    var list = document.getElementById("messages");
    if (!list) { return; }
    var near = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
    if (force || near) { list.scrollTop = list.scrollHeight; }
  }

  function growingIds() {
    var ids = [];
    var shown = document.querySelectorAll("#messages [data-testid=message][data-status=streaming]");
    for (var i = 0; i < shown.length; i++) { ids.push(shown[i].id.replace(/^message-/, "")); }
    return ids;
  }

  // Messages after seq `since` (the newest first), optionally only by `author` or not by `me`.
  function newerMessages(since) {
    var found = [];
    var all = document.querySelectorAll("#messages [data-testid=message][data-seq]");
    for (var i = all.length - 1; i >= 0; i--) {
      if (parseInt(all[i].getAttribute("data-seq"), 10) <= since) { break; }
      found.push(all[i]);
    }
    return found;
  }

  // Status text goes when its cause ends, not on a timer alone:
  // "still answering" when no reply grows; "X is typing" when X's message arrives (or after
  // 4 s of quiet); a room's quota notice when someone else's message arrives after it.
  function clearEndedStatus() {
    if (!document.querySelector("#messages [data-testid=message][data-status=streaming]")) {
      clearNotice("streaming");
    }
    var typing = document.getElementById("typing");
    if (typing && typing.textContent) {
      if (!typing.hasAttribute("data-since")) {
        typing.setAttribute("data-since", lastSeq());
        clearTimeout(typing._clear);
        typing._clear = setTimeout(function () { typing.textContent = ""; }, 4000);
      }
      var who = typing.getAttribute("data-user");
      var since = parseInt(typing.getAttribute("data-since"), 10);
      var theirs = newerMessages(since).filter(function (m) { return m.getAttribute("data-author") === who; });
      if (theirs.length) { clearTimeout(typing._clear); typing.textContent = ""; }
    }
    var notice = document.getElementById("notice");
    var el = chat();
    if (notice && el && el.hasAttribute("data-room") && notice.getAttribute("data-cause") === "quota") {
      if (!notice.hasAttribute("data-since")) { notice.setAttribute("data-since", lastSeq()); }
      var me = el.getAttribute("data-me");
      var others = newerMessages(parseInt(notice.getAttribute("data-since"), 10))
        .filter(function (m) { return m.getAttribute("data-author") !== me; });
      if (others.length) { clearNotice("quota"); }
    }
  }

  // A notice about a cause that ended goes away (the cause is named by data-cause).
  function clearNotice(cause) {
    var notice = document.getElementById("notice");
    if (notice && notice.getAttribute("data-cause") === cause) {
      notice.textContent = "";
      notice.removeAttribute("data-cause");
      notice.removeAttribute("data-since");
    }
  }

  // The socket's state, for people: "Reconnecting…" while it is down, "Back online" after.
  var wasLost = false;
  var onlineTimer = null;
  function connection(key) {
    var box = document.getElementById("connection");
    if (!box) { return; }
    clearTimeout(onlineTimer);
    if (!key) { box.hidden = true; box.textContent = ""; box.removeAttribute("data-state"); return; }
    box.textContent = box.getAttribute("data-" + key) || "";
    box.setAttribute("data-state", key);
    box.hidden = false;
    if (key === "online") {
      clearNotice("offline");
      onlineTimer = setTimeout(function () { connection(""); }, 4000);
    }
  }

  // A reply whose stream stopped arriving is marked waiting (the resync replaces it).
  function markWaiting() {
    var box = document.getElementById("connection");
    var text = box ? box.getAttribute("data-waiting") : "";
    var shown = document.querySelectorAll("#messages [data-testid=message][data-status=streaming]");
    for (var i = 0; i < shown.length; i++) {
      if (shown[i].hasAttribute("data-waiting")) { continue; }
      shown[i].setAttribute("data-waiting", "true");
      var note = document.createElement("p");
      note.className = "status-note waiting-note";
      note.textContent = text;
      shown[i].appendChild(note);
    }
  }

  function lost() {
    var el = chat();
    // Closed for good (signed out, removed, deleted): nothing to reconnect to.
    if (!el || /^44/.test(el.getAttribute("data-close-code") || "")) { return; }
    wasLost = true;
    connection("reconnecting");
    markWaiting();
  }

  var heartbeat = null;
  document.addEventListener("htmx:wsOpen", function (evt) {
    var el = chat();
    if (el) { el.setAttribute("data-ws", "open"); el.removeAttribute("data-close-code"); }
    if (wasLost) {
      wasLost = false;
      // Said once the catch-up had a moment to arrive (the resync below asks for it).
      clearTimeout(onlineTimer);
      onlineTimer = setTimeout(function () { connection("online"); }, 600);
    }
    // Tell the server what this page already has (and which replies it shows still growing,
    // in case they ended while the socket was down); it sends what was missed.
    evt.detail.socketWrapper.sendImmediately(
      JSON.stringify({ action: "resync", last_seq: lastSeq(), streaming: growingIds() }));
    clearInterval(heartbeat);
    heartbeat = setInterval(function () {
      // Replies still shown growing let the server end those whose process died.
      evt.detail.socketWrapper.send(JSON.stringify({ action: "heartbeat", streaming: growingIds() }));
    }, 20000);
  });

  document.addEventListener("htmx:wsClose", function (evt) {
    var el = chat();
    if (el) { el.setAttribute("data-ws", "closed"); el.setAttribute("data-close-code", evt.detail.event.code); }
    clearInterval(heartbeat);
    lost();
    // The extension retries only on abnormal closes; a server restart (1001) deserves one too.
    if (evt.detail.event.code === 1001 || evt.detail.event.code === 1012) {
      setTimeout(function () { evt.detail.socketWrapper.reconnect(); }, 1000 + Math.random() * 1000);
    }
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var el = chat();
    // Frames are rendered once for every reader, in the server's zone: show the reader's.
    localiseTimes(document.getElementById("messages"));
    localiseTimes(document.getElementById("notice"));
    addCodeCopy(document.getElementById("messages"));
    scrollToEnd(false);
    clearEndedStatus();
    if (el) { el.setAttribute("data-last-seq", lastSeq()); }
  });

  // After an accepted send, the server replaces the textarea: keep the focus in it.
  // The event fires on the new element; detail.target is the old one, already detached.
  // The tab title follows the conversation's name (renamed, or named by its first answer).
  var TITLE_SUFFIX = / · Practalk$/.test(document.title) ? " · Practalk" : "";
  function followTitle() {
    var heading = document.getElementById("conv-title");
    if (heading) { document.title = heading.textContent.trim() + TITLE_SUFFIX; }
  }
  document.addEventListener("htmx:afterSettle", followTitle);  // after a rename (hx-post)

  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    if (evt.target && evt.target.id === "conv-title") { followTitle(); }
    if (evt.target && evt.target.id === "composer-input") {
      fitPlaceholder(evt.target);
      evt.target.focus();
      count(evt.target);
    }
    if (evt.target && evt.target.id === "quota-box") {
      localiseTimes(evt.target);
      syncQuota();
    }
  });

  // Escape closes open menus; in the composer it also stops a reply that is streaming.
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || evt.isComposing) { return; }
    var open = document.querySelectorAll("details[open]");
    for (var i = 0; i < open.length; i++) {
      open[i].open = false;
      var summary = open[i].querySelector("summary");
      if (summary && open[i].contains(evt.target)) { summary.focus(); }
    }
    var t = evt.target;
    if (t && t.id === "composer-input" &&
        document.querySelector("#messages [data-testid=message][data-status=streaming]")) {
      var stop = document.querySelector("[data-testid=stop]");
      if (stop && stop.form) { evt.preventDefault(); stop.form.requestSubmit(); }
    }
  });

  // Enter sends, Shift+Enter makes a new line; typing tells the room (throttled by the server).
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (!t || t.id !== "composer-input") { return; }
    if (evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      if (t.value.trim() && !composerBlocked(t.form)) { t.form.requestSubmit(); }
    }
  });
  document.addEventListener("htmx:wsError", function () { lost(); });

  // A blocked composer never sends (Enter, a click, or requestSubmit from elsewhere); while
  // the socket is down a send is refused out loud and the text stays in the box.
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form || !form.hasAttribute("ws-send")) { return; }
    var el = chat();
    var down = el && el.getAttribute("data-ws") !== "open";
    if ((form.id === "composer" && composerBlocked(form)) || down) {
      evt.preventDefault();
      evt.stopImmediatePropagation();
      if (down) {
        var notice = document.getElementById("notice");
        var box = document.getElementById("connection");
        if (notice && box) {
          notice.textContent = box.getAttribute("data-refused");
          notice.setAttribute("data-cause", "offline");
        }
      }
    }
  }, true);

  // A touch screen has no Shift+Enter to tell of: the short hint fits a phone's box.
  function fitPlaceholder(box) {
    var touch = box && box.getAttribute("data-touch-placeholder");
    if (touch && window.matchMedia && window.matchMedia("(pointer: coarse)").matches) {
      box.setAttribute("placeholder", touch);
    }
  }

  // The composer's counter: what is left of the limit, once the text is long enough to care.
  function count(box) {
    var counter = document.getElementById("composer-count");
    if (!box || !counter) { return; }
    var max = parseInt(counter.getAttribute("data-max"), 10);
    var left = max - box.value.length;
    counter.hidden = box.value.length < max * 0.8;
    counter.textContent = left + " / " + max;
    counter.classList.toggle("danger", left <= 0);
  }
  document.addEventListener("input", function (evt) {
    if (evt.target && evt.target.id === "composer-input") { count(evt.target); }
  });

  // Copy buttons: a whole reply (its button is in the message), and every code block.
  function addCodeCopy(root) {
    var blocks = (root || document).querySelectorAll("#messages .message .body pre:not([data-copy-ready])");
    var label = document.querySelector("[data-copy-label]");
    for (var i = 0; i < blocks.length; i++) {
      blocks[i].setAttribute("data-copy-ready", "");
      var b = document.createElement("button");
      b.type = "button";
      b.className = "link copy copy-code";
      b.setAttribute("data-copy", "code");
      b.setAttribute("data-testid", "copy-code");
      b.textContent = label ? label.getAttribute("data-copy-label") : "Copy";
      b.setAttribute("data-copied", label ? label.getAttribute("data-copied-label") : "Copied");
      blocks[i].parentNode.insertBefore(b, blocks[i].nextSibling);
    }
  }
  document.addEventListener("click", function (evt) {
    var b = evt.target && evt.target.closest && evt.target.closest("[data-copy]");
    if (!b) { return; }
    var text = "";
    if (b.getAttribute("data-copy") === "code") {
      var pre = b.previousElementSibling;
      text = pre ? pre.innerText : "";
    } else {
      var body = b.closest(".message").querySelector(".body");
      text = body ? body.innerText : "";
    }
    if (!navigator.clipboard) { return; }
    navigator.clipboard.writeText(text).then(function () {
      var was = b.textContent;
      b.textContent = b.getAttribute("data-copied") || was;
      setTimeout(function () { b.textContent = was; }, 1500);
    });
  });

  // "Load older" keeps the reader's place: the list grows above what they were reading.
  var olderFrom = null;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail && evt.detail.target;
    if (target && target.classList && target.classList.contains("load-older")) {
      var list = document.getElementById("messages");
      olderFrom = list ? list.scrollHeight - list.scrollTop : null;
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    if (olderFrom === null) { return; }
    var list = document.getElementById("messages");
    if (list) { list.scrollTop = list.scrollHeight - olderFrom; }
    olderFrom = null;
    localiseTimes(list);
    addCodeCopy(list);
  });

  var lastTyping = 0;
  document.addEventListener("input", function (evt) {
    var t = evt.target;
    if (!t || t.id !== "composer-input" || !t.closest("[data-room]")) { return; }
    var now = Date.now();
    if (now - lastTyping < 2000) { return; }
    lastTyping = now;
    var el = chat();
    var ws = el && htmx.closest(el, "[ws-connect]");
    var wrapper = ws && ws["htmx-internal-data"] && ws["htmx-internal-data"].webSocket;
    if (wrapper) { wrapper.send(JSON.stringify({ action: "typing" })); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    localiseTimes(document);
    addCodeCopy(document);
    count(document.getElementById("composer-input"));
    fitPlaceholder(document.getElementById("composer-input"));
    syncQuota();
    // An opened conversation is ready to type in (not on touch screens: no surprise keyboard).
    var box = document.getElementById("composer-input");
    if (box && window.matchMedia && window.matchMedia("(pointer: fine)").matches) { box.focus(); }
    scrollToEnd(true);
  });
})();
