// triangulate review page: evidence clicks highlight quotes in their article; "conflicts only" filter.
// Article texts come from the JSON data block and are only ever set through textContent,
// so no article content is ever parsed as HTML.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("triangulate-data").textContent);
  var texts = data.texts;

  function clearHighlights() {
    document.querySelectorAll(".article-text[data-highlighted]").forEach(function (el) {
      el.textContent = texts[el.dataset.article];
      delete el.dataset.highlighted;
    });
    document.querySelectorAll("article.source-article.focused").forEach(function (el) {
      el.classList.remove("focused");
    });
    document.querySelectorAll(".quote-note").forEach(function (el) { el.textContent = ""; });
    document.querySelectorAll('button.evidence[aria-pressed="true"]').forEach(function (el) {
      el.setAttribute("aria-pressed", "false");
    });
  }

  function showEvidence(button) {
    clearHighlights();
    button.setAttribute("aria-pressed", "true");
    var key = button.dataset.article;
    var article = document.getElementById("article-" + key);
    if (!article) { return; }
    var textEl = article.querySelector(".article-text");
    var note = article.querySelector(".quote-note");
    article.classList.add("focused");
    var text = texts[key];
    var start = button.dataset.start === undefined ? NaN : Number(button.dataset.start);
    var end = button.dataset.end === undefined ? NaN : Number(button.dataset.end);
    var quote = button.querySelector("q.quote");
    if (text === undefined || text === null) {
      note.textContent = "The article text is not available in this run.";
      article.scrollIntoView({ block: "start" });
      return;
    }
    if (button.dataset.status === "ungrounded") {
      note.textContent = "Not checked: this value was never located in the article (its text was not available when it was reconciled).";
      article.scrollIntoView({ block: "start" });
      return;
    }
    // Unfound quotes have no span: say so instead of highlighting something else.
    if (button.dataset.status === "unfound" || isNaN(start) || isNaN(end) || end > text.length || start > end) {
      note.textContent = "Quote not found in article: \u201c" + (quote ? quote.textContent : "") + "\u201d";
      article.scrollIntoView({ block: "start" });
      return;
    }
    var mark = document.createElement("mark");
    mark.className = "quote-highlight";
    mark.textContent = text.slice(start, end);
    textEl.textContent = "";
    textEl.append(text.slice(0, start), mark, text.slice(end));
    textEl.dataset.highlighted = "1";
    if (button.dataset.status !== "exact") {
      note.textContent = "Located by " + button.dataset.status + " match (the article's wording differs slightly).";
    }
    article.scrollIntoView({ block: "start" });
    mark.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.evidence");
    if (button) { showEvidence(button); }
  });

  var toggle = document.getElementById("conflicts-only");
  function applyFilter() { document.body.classList.toggle("conflicts-only", toggle.checked); }
  toggle.addEventListener("change", applyFilter);
  applyFilter();
})();
