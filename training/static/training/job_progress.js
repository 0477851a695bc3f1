// The admin's job page follows a running job: it asks GET /train/<id> (the signed-in session is the
// credential) every few seconds, updates status, stage and progress, and reloads the page once the job
// has ended so its metrics and version appear.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("job-poll").textContent);
  const RETRY_MS = 10000;

  function show(job) {
    const percent = Math.round(job.progress * 100) + "%";
    document.querySelectorAll("progress.job-progress").forEach(function (bar) {
      bar.value = job.progress;
      bar.textContent = percent;
      bar.title = config.stages[job.stage] || job.stage;
    });
    document.querySelectorAll(".job-percent").forEach(function (text) {
      text.textContent = percent;
    });
    const status = document.getElementById("job-status");
    if (status) status.textContent = config.statuses[job.status] || job.status;
    const stage = document.getElementById("job-stage");
    if (stage) stage.textContent = config.stages[job.stage] || job.stage;
    const cancel = document.getElementById("job-cancel");
    if (cancel && config.uncancellable_stages.includes(job.stage)) cancel.closest("li").hidden = true;
  }

  function poll() {
    fetch(config.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          return null; // signed out or no longer visible: stop following
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json().then(function (job) {
          show(job);
          if (config.finished.includes(job.status)) {
            window.location.reload();
          } else {
            window.setTimeout(poll, config.interval_ms);
          }
        });
      })
      .catch(function () {
        // The server is restarting or unreachable for a moment: try again, less often.
        window.setTimeout(poll, RETRY_MS);
      });
  }

  window.setTimeout(poll, config.interval_ms);
})();
