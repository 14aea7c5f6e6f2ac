// triangulate serve: the pages' behaviour. Loaded from the app itself (no CDN); the pages run no
// inline script. Text from articles and records only ever reaches the page through textContent.
"use strict";

(function () {
  const tokenMeta = document.querySelector('meta[name="triangulate-token"]');
  const TOKEN = tokenMeta ? tokenMeta.content : "";
  const statusBox = document.getElementById("status");

  function say(message, isError) {
    if (!statusBox) return;
    statusBox.textContent = message;
    statusBox.classList.toggle("error", Boolean(isError));
    statusBox.classList.add("shown");
  }

  function typing(event) {
    const t = event.target;
    return t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(t.tagName));
  }

  // ------------------------------------------------------------------ keys help (both pages)

  const keys = document.getElementById("keys");
  function toggleKeys() {
    if (keys) keys.hidden = !keys.hidden;
  }
  const showKeys = document.getElementById("show-keys");
  if (showKeys) showKeys.addEventListener("click", toggleKeys);

  // ------------------------------------------------------------------ the index

  const search = document.getElementById("search");
  const rows = Array.from(document.querySelectorAll("tr.incident-row"));

  function filterRows() {
    // The same rule as the server's ?q=: every word must occur in the row's search text.
    const terms = search.value.toLocaleLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of rows) {
      const text = row.dataset.search || "";
      const match = terms.every((term) => text.includes(term));
      row.hidden = !match;
      if (match) shown += 1;
    }
    const count = document.getElementById("shown-count");
    if (count) count.textContent = String(shown);
    const none = document.getElementById("no-match");
    if (none) none.hidden = shown > 0;
  }

  if (search) {
    search.addEventListener("input", filterRows);
    for (const select of document.querySelectorAll("#filters select")) {
      // Filters are answered by the server (they look inside every flagged field).
      select.addEventListener("change", () => select.form.submit());
    }
  }

  function moveRow(step) {
    const visible = rows.filter((row) => !row.hidden);
    if (!visible.length) return;
    const at = visible.indexOf(document.activeElement);
    const next = visible[Math.min(Math.max(at + step, 0), visible.length - 1)];
    next.focus();
    next.scrollIntoView({ block: "nearest" });
  }

  // ------------------------------------------------------------------ the incident view

  const incidentBox = document.getElementById("incident");
  const INCIDENT = incidentBox ? incidentBox.dataset.incident : null;
  const fields = Array.from(document.querySelectorAll("section.field.flagged"));

  async function decide(section, action, value, note) {
    const payload = { incident_id: INCIDENT, field_path: section.dataset.path, action: action, value: value, note: note };
    say("recording…");
    let reply;
    try {
      reply = await fetch("/api/decisions", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Triangulate-Token": TOKEN },
        body: JSON.stringify(payload),
      });
    } catch (err) {
      say("not recorded: the app cannot be reached (" + err + ")", true);
      return;
    }
    const answer = await reply.json().catch(() => ({}));
    if (!reply.ok) {
      say("not recorded: " + (answer.error || reply.status), true);
      return;
    }
    say("decision " + answer.decision.seq + " recorded");
    // Reload from the server, which now shows the decision as every other reader will see it;
    // the anchor brings the reviewer back to the same field.
    history.replaceState(null, "", "#" + section.id);
    window.location.reload();
  }

  function noteOf(section) {
    const input = section.querySelector('form.decide input[name="note"]');
    return input ? input.value.trim() : "";
  }

  function acceptFocused(section) {
    const active = document.activeElement;
    const value = active instanceof HTMLElement ? active.closest("div.value") : null;
    if (value && section.contains(value)) {
      decide(section, "accept", JSON.parse(value.dataset.value), noteOf(section));
    } else if (section.dataset.hasConsensus === "true") {
      decide(section, "accept", JSON.parse(section.dataset.consensus), noteOf(section));
    } else {
      say("this field has no consensus: choose one of the values (Tab to its Accept) or set one", true);
    }
  }

  function focusField(section) {
    for (const other of fields) other.classList.toggle("focused", other === section);
    section.focus({ preventScroll: true });
    section.scrollIntoView({ block: "start" });
  }

  function currentField() {
    const active = document.activeElement;
    const inside = active instanceof HTMLElement ? active.closest("section.field.flagged") : null;
    return inside || fields.find((f) => f.classList.contains("focused")) || null;
  }

  function moveField(step) {
    if (!fields.length) return;
    const at = fields.indexOf(currentField());
    const next = at === -1 ? (step > 0 ? 0 : fields.length - 1) : Math.min(Math.max(at + step, 0), fields.length - 1);
    focusField(fields[next]);
  }

  for (const section of fields) {
    for (const button of section.querySelectorAll("button.accept")) {
      button.addEventListener("click", () => {
        const value = button.closest("div.value");
        decide(section, "accept", JSON.parse(value.dataset.value), noteOf(section));
      });
    }
    const form = section.querySelector("form.decide");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = form.elements.namedItem("value").value;
      const note = noteOf(section);
      if (!value.trim()) return say("give the value to set", true);
      if (!note) return say("say why in the note: a set value needs one", true);
      decide(section, "set", value, note);
    });
    form.querySelector("button.resolve").addEventListener("click", () => {
      decide(section, "resolved", null, noteOf(section));
    });
    section.addEventListener("focusin", () => {
      for (const other of fields) other.classList.toggle("focused", other === section);
    });
  }

  // The whole article, fetched when first opened: the server cuts it at the quote (in its own
  // character counting), so the page only lays out three pieces of text.
  for (const details of document.querySelectorAll("details.whole-article")) {
    details.addEventListener("toggle", async () => {
      const box = details.querySelector(".article-text");
      if (!details.open || box.dataset.loaded) return;
      const query = new URLSearchParams({ id: details.dataset.article, start: details.dataset.start, end: details.dataset.end });
      const reply = await fetch("/api/article?" + query.toString());
      const answer = await reply.json().catch(() => ({}));
      if (!reply.ok) {
        box.textContent = "cannot show the article: " + (answer.error || reply.status);
        return;
      }
      const mark = document.createElement("mark");
      mark.className = "evidence";
      mark.textContent = answer.quote;
      box.replaceChildren(document.createTextNode(answer.before), mark, document.createTextNode(answer.after));
      box.dataset.loaded = "1";
      // Scroll inside the article box only, so the field stays where the reviewer is reading.
      box.scrollTop = Math.max(mark.offsetTop - box.offsetTop - box.clientHeight / 3, 0);
    });
  }

  // After a decision the page reloads at the field's anchor: the browser must not put back the
  // old scroll position over it.
  if (fields.length && "scrollRestoration" in history) history.scrollRestoration = "manual";
  if (fields.length && window.location.hash) {
    const target = document.getElementById(window.location.hash.slice(1));
    if (target && fields.includes(target)) focusField(target);
  }

  // ------------------------------------------------------------------ keys

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "?") {
      toggleKeys();
    } else if (event.key === "Escape" && keys && !keys.hidden) {
      keys.hidden = true;
    } else if (search && event.key === "/") {
      event.preventDefault();
      search.focus();
    } else if (event.key === "j" || event.key === "k") {
      const step = event.key === "j" ? 1 : -1;
      if (fields.length) moveField(step);
      else if (rows.length) moveRow(step);
    } else if (event.key === "Enter" && rows.includes(document.activeElement)) {
      document.activeElement.querySelector("a.title").click();
    } else if (event.key === "a" && fields.length) {
      const section = currentField();
      if (section) acceptFocused(section);
      else say("move to a field first (j)", true);
    } else {
      return;
    }
    event.preventDefault();
  });
})();
