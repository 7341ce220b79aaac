// Live class pages: the question's countdown. It only warns; an answer is never cut off.
(function () {
  "use strict";

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function tick() {
    var clocks = document.querySelectorAll("[data-deadline]");
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var left = Math.round((new Date(el.getAttribute("data-deadline")) - Date.now()) / 1000);
      if (isNaN(left)) { continue; }
      if (left <= 0) {
        el.textContent = el.getAttribute("data-over") || "0:00";
        el.setAttribute("data-warn", "over");
      } else {
        el.textContent = Math.floor(left / 60) + ":" + pad(left % 60);
        el.setAttribute("data-warn", left <= 15 ? "soon" : "no");
      }
    }
  }

  // A hand raised: the alert fades after a while (the list keeps the hand).
  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    if (evt.target && evt.target.id === "hand-alert") {
      clearTimeout(evt.target._fade);
      var alert = evt.target;
      alert._fade = setTimeout(function () { alert.classList.remove("flash-hand"); }, 6000);
    }
  });

  setInterval(tick, 500);
  document.addEventListener("DOMContentLoaded", tick);
})();
