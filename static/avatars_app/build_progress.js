"use strict";
// Live avatar build progress on the admin change page: polls the JSON status view once a second while the
// build is pending or running, and reloads the page when it ends so the preview (or the error) shows.
(function () {
  const POLL_MS = 1000;

  function follow(panel) {
    const bar = panel.querySelector(".avatar-build__bar");
    const percent = panel.querySelector(".avatar-build__percent");
    const status = panel.querySelector(".avatar-build__status");
    const stage = panel.querySelector(".avatar-build__stage");
    const error = panel.querySelector(".avatar-build__error");

    function show(state) {
      bar.value = state.progress;
      percent.textContent = state.progress + "%";
      status.textContent = state.status_label;
      status.className = "avatar-build__status avatar-build__status--" + state.status;
      stage.textContent = state.stage_label;
      error.textContent = state.error;
      error.hidden = !state.error;
    }

    async function poll() {
      try {
        const response = await fetch(panel.dataset.statusUrl, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.ok) {
          const state = await response.json();
          show(state);
          if (!state.running) {
            window.location.reload();
            return;
          }
        }
      } catch (err) {
        // A restarting server or a dropped connection: keep polling.
      }
      window.setTimeout(poll, POLL_MS);
    }

    window.setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".avatar-build[data-running='true']").forEach(follow);
  });
})();
