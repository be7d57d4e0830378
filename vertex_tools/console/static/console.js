// vertex console: the live audit timeline. Polls the JSON feed and rebuilds the rows
// with textContent only: nothing from the log is ever parsed as HTML.
"use strict";
(function () {
  var table = document.getElementById("timeline");
  if (!table) { return; }
  var feed = table.getAttribute("data-feed");
  var columns = ["seq", "time", "decision", "reason", "request", "token", "grant", "status",
                 "message"];
  var decisions = { allow: 1, deny: 1, approve: 1, admin: 1 };
  var live = document.getElementById("live");
  var lastHead = null;
  var lastChain = null;

  function row(entry) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-seq", String(entry.seq));
    columns.forEach(function (name) {
      var td = document.createElement("td");
      if (name === "decision") {
        var badge = document.createElement("span");
        var kind = decisions[entry.decision] ? entry.decision : "other";
        badge.className = "badge d-" + kind;
        badge.textContent = entry.decision;
        td.appendChild(badge);
      } else {
        td.className = "c-" + name;
        td.textContent = String(entry[name]);
      }
      tr.appendChild(td);
    });
    return tr;
  }

  function chain(status) {
    var card = document.getElementById("chain");
    if (!card || !status) { return; }
    var key = JSON.stringify(status);
    if (key === lastChain) { return; }
    lastChain = key;
    card.className = "card " + (status.ok ? "ok" : "bad");
    var lines = card.querySelectorAll("p");
    var line = lines[0];
    if (!line) { return; }
    line.className = status.ok ? "ok" : "bad";
    line.textContent = status.ok
      ? "Chain verified: " + status.entries + " entries, head seq " + status.head_seq + " " +
        status.head_hash.slice(0, 16)
      : "Chain BROKEN: " + status.error;
    // The second line: the last checkpoint (absent while the first check was running).
    var cp = lines[1];
    if (!cp) {
      cp = document.createElement("p");
      card.appendChild(cp);
    }
    if (status.checkpoint_seq !== null && status.checkpoint_seq !== undefined) {
      cp.className = "";
      cp.textContent = "Last checkpoint: seq " + status.checkpoint_seq + ", head " +
        status.checkpoint_head.slice(0, 16) + ", signed " + status.checkpoint_time +
        " (" + status.checkpoint_note + ")";
    } else {
      cp.className = "hint";
      cp.textContent = status.checkpoint_note || "";
    }
  }

  function poll() {
    fetch(feed, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.json();
      })
      .then(function (data) {
        chain(data.chain);
        if (data.head !== lastHead) {
          lastHead = data.head;
          var body = table.tBodies[0];
          var fresh = document.createElement("tbody");
          data.rows.forEach(function (entry) { fresh.appendChild(row(entry)); });
          table.replaceChild(fresh, body);
        }
        if (live) { live.textContent = "live, head " + data.head; }
      })
      .catch(function (error) {
        if (live) { live.textContent = "not updating: " + error.message; }
      })
      .then(function () { window.setTimeout(poll, 1500); });
  }
  poll();
})();
