// triangulate review page: the index (search and filters), one incident at a time in review order,
// and a citation's evidence shown in its surrounding text right below its field.
// Everything from the run (values, quotes, names, article texts) comes from the JSON data block and
// is only ever inserted as text (textContent, text nodes): nothing from the run is parsed as HTML.
// The block's shape is documented in pipeline/outputs/report.py (_Page).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("triangulate-data").textContent);
  var S = data.strings;
  var ARTICLES = data.articles;
  var TEXTS = data.texts;
  var FLAGGED = {};
  data.flagged.forEach(function (v) { FLAGGED[v] = true; });
  var byId = Object.create(null);
  data.incidents.forEach(function (inc) { byId[inc.id] = inc; });
  // At most this much text (UTF-16 units) either side of a quote before "Whole article": a long
  // paragraph, or an article without line breaks, would otherwise bury the quote.
  var CONTEXT = 400;

  var detail = document.getElementById("incident");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#index tbody tr"));
  var rowById = Object.create(null);
  rows.forEach(function (row) { rowById[row.dataset.id] = row; });
  var search = document.getElementById("search");
  var verdictFilter = document.getElementById("verdict-filter");
  var stateFilter = document.getElementById("state-filter");
  var fieldFilter = document.getElementById("field-filter");
  var indexCount = document.getElementById("index-count");
  var indexEmpty = document.getElementById("index-empty");
  var shown = null; // id of the incident on screen
  var evidence = null; // the open evidence panel: {button, row, panel, citation, whole}

  function node(tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined && text !== null) { el.textContent = String(text); }
    return el;
  }
  function button(className, text) {
    var b = node("button", className, text);
    b.type = "button";
    return b;
  }
  function count(n, word, plural) {
    return n.toLocaleString("en-US") + " " + (n === 1 ? word : plural || word + "s");
  }
  function shortId(articleId) { return articleId.replace(/^sha256:/, "").slice(0, 10); }
  // The same folding as report.py's _fold, so a query without accents finds names with them.
  function fold(s) { return s.toLowerCase().normalize("NFD").replace(/\p{Mn}/gu, ""); }

  // ------------------------------------------------------------------ the index

  function rowMatches(row, words, verdict, state) {
    var verdicts = row.dataset.verdicts;
    if (verdict === "flagged" ? verdicts === "" : verdict && verdicts.split(" ").indexOf(verdict) < 0) {
      return false;
    }
    if (state && row.dataset.review.split(" ").indexOf(state) < 0) { return false; }
    var haystack = row.dataset.q;
    return words.every(function (w) { return haystack.indexOf(w) >= 0; });
  }

  function applyIndexFilter() {
    var words = fold(search.value).split(/\s+/).filter(Boolean);
    var n = 0;
    rows.forEach(function (row) {
      row.hidden = !rowMatches(row, words, verdictFilter.value, stateFilter.value);
      if (!row.hidden) { n += 1; }
    });
    indexCount.textContent = n === rows.length
      ? count(rows.length, "incident")
      : "Showing " + n.toLocaleString("en-US") + " of " + count(rows.length, "incident");
    indexEmpty.hidden = n > 0 || rows.length === 0;
    updateNav();
  }

  function neighbour(direction) {
    var at = shown === null ? -1 : rows.indexOf(rowById[shown]);
    for (var k = at + direction; k >= 0 && k < rows.length; k += direction) {
      if (!rows[k].hidden) { return rows[k]; }
    }
    return null;
  }

  function updateNav() {
    detail.querySelectorAll("button[data-step]").forEach(function (b) {
      b.disabled = neighbour(Number(b.dataset.step)) === null;
    });
  }

  // ------------------------------------------------------------------ one incident

  function drawIncident(inc) {
    detail.textContent = "";
    detail.dataset.incident = inc.id;
    var head = node("header", "incident-head");
    var nav = node("div", "incident-nav");
    var prev = button("step", "\u2190 Previous");
    prev.dataset.step = "-1";
    var next = button("step", "Next \u2192");
    next.dataset.step = "1";
    nav.append(prev, next);
    head.append(nav, node("h2", "incident-title", inc.title));
    var ids = node("p", "incident-ids");
    ids.append(node("code", null, inc.id));
    if (inc.aliases.length) { ids.append(" \u00b7 merged in: " + inc.aliases.join(", ")); }
    head.append(ids, node("p", "incident-stats", inc.line));
    detail.append(head);
    if (inc.stale.length) { detail.append(drawStale(inc.stale)); }

    var table = node("table", "fields");
    var cols = node("colgroup");
    ["c-field", "c-merged", "c-verdict", "c-values"].forEach(function (c) { cols.append(node("col", c)); });
    var headRow = node("tr");
    ["Field", "Merged value", "Verdict", "Values and their sources"].forEach(function (h) {
      headRow.append(node("th", null, h));
    });
    var thead = node("thead");
    thead.append(headRow);
    var tbody = node("tbody");
    inc.fields.forEach(function (f, i) { tbody.append(drawField(f, i)); });
    table.append(cols, thead, tbody);
    detail.append(table, node("p", "none filter-empty", "No field of this incident matches the field filter."));
    detail.append(drawArticles(inc));
  }

  function drawStale(stale) {
    var box = node("div", "stale-decisions");
    box.append(node("strong", null, count(stale.length, "decision") + " no longer " +
      (stale.length === 1 ? "applies" : "apply") + " to this incident:"));
    var list = node("ul");
    stale.forEach(function (s) {
      // [seq, action, field, value, note, by, at, reason]
      var what = "#" + s[0] + " " + s[1] + (s[2] ? " " + s[2] : "") + (s[3] ? " = " + s[3] : "");
      var li = node("li", null, what + " by " + s[5] + " (" + s[6] + "): " + s[7]);
      if (s[4]) { li.append(node("div", "note", s[4])); }
      list.append(li);
    });
    box.append(list);
    return box;
  }

  function drawField(f, i) {
    // [path, verdict, consensus, notes, values, decision?]: strings are positions in S.
    var path = S[f[0]];
    var verdict = S[f[1]];
    var consensus = f[2] === null ? null : S[f[2]];
    var decision = f.length > 5 ? f[5] : null;
    var tr = node("tr", "field verdict-" + verdict + (FLAGGED[verdict] ? " flagged" : "") + (decision ? " decided" : ""));
    tr.dataset.path = path;
    tr.dataset.verdict = verdict;
    var th = node("th");
    th.scope = "row";
    th.append(node("code", null, path));

    var merged = node("td", "merged");
    var noConsensus = verdict === "contradiction" ? "no consensus" : "\u2014";
    if (decision) {
      // [action, value, note, by, at, seq]: the decided value leads; the sources' merge stays beside it.
      var box = node("div", "decision");
      box.append(node("span", "badge decided", "decided"), " ",
        node("span", "merged-value", decision[1] === null ? "\u2014" : decision[1]));
      box.append(node("div", "decision-meta", decision[0] + " by " + decision[3] + ", " + decision[4] + " (#" + decision[5] + ")"));
      if (decision[2]) { box.append(node("div", "decision-note", decision[2])); }
      merged.append(box, node("div", "note sources-merge", "Sources' merge: " + (consensus === null ? noConsensus : consensus)));
    } else if (consensus !== null) {
      merged.append(node("span", "merged-value", consensus));
    } else {
      merged.append(node("span", "none", noConsensus));
    }
    f[3].forEach(function (note) { merged.append(node("div", "note", S[note])); });

    var badge = node("td");
    badge.append(node("span", "badge verdict-" + verdict, verdict));

    var valuesCell = node("td");
    var values = node("ul", "values");
    f[4].forEach(function (v, j) {
      // [text, n_articles, n_sources, [source label], [citation]]
      var li = node("li", "value");
      var sources = count(v[2], "independent source") +
        (v[3].length ? ": " + v[3].map(function (s) { return S[s]; }).join("; ") : "");
      li.append(node("span", "value-text", S[v[0]]), " ", node("span", "support", count(v[1], "article") + ", " + sources));
      var cites = node("ul", "citations");
      v[4].forEach(function (c, k) {
        var item = node("li");
        item.append(drawCitation(c, i + "," + j + "," + k));
        cites.append(item);
      });
      li.append(cites);
      values.append(li);
    });
    valuesCell.append(values);
    tr.append(th, merged, badge, valuesCell);
    return tr;
  }

  function quoteOf(c) {
    // A quote found verbatim travels only as its offsets: the article's text holds it.
    return c.length > 6 ? c[6] : TEXTS[c[0]].slice(c[4], c[5]);
  }

  function drawCitation(c, where) {
    // [article, who, status, decides, start, end, quote?]
    var article = ARTICLES[c[0]];
    var status = S[c[2]];
    var b = button("evidence");
    b.setAttribute("aria-expanded", "false");
    b.dataset.cite = where;
    b.dataset.status = status;
    // UTF-16 offsets (what String.slice counts); none when the quote was not located.
    if (typeof c[4] === "number") {
      b.dataset.start = c[4];
      b.dataset.end = c[5];
    }
    var meta = node("span", "cite-meta");
    meta.append(node("span", "outlet", article[1]), " \u00b7 ", node("code", null, shortId(article[0])),
      " \u00b7 " + S[c[1]] + " \u00b7 ",
      node("span", "status status-" + status, data.statusLabels[status] || status));
    if (!c[3]) { meta.append(" \u00b7 ", node("span", "not-evidence", "not evidence")); }
    b.append(meta, node("q", "quote", quoteOf(c)));
    return b;
  }

  function drawArticles(inc) {
    var section = node("section", "articles");
    section.append(node("h3", null, "Articles"));
    var list = node("ul", "article-list");
    inc.articles.forEach(function (n) {
      // [id, outlet, title, published, url, url_is_link, source_path, model]
      var a = ARTICLES[n];
      var li = node("li", "source-article");
      li.dataset.articleId = a[0];
      var head = node("div", "article-head");
      head.append(node("strong", "outlet", a[1]));
      if (a[2]) { head.append(" \u2014 " + a[2]); }
      var meta = node("div", "article-meta", a[3] || "no date");
      if (a[4]) {
        meta.append(" \u00b7 ");
        // report.py marks only http(s) URLs as links; the check here keeps a javascript: URL text
        // even if the data block said otherwise.
        if (a[5] && /^https?:\/\//i.test(a[4])) {
          var link = node("a", null, a[4]);
          link.href = a[4];
          link.rel = "noopener noreferrer nofollow";
          meta.append(link);
        } else {
          meta.append(a[4]);
        }
      }
      meta.append(" \u00b7 ", node("code", null, a[0]));
      if (a[6]) { meta.append(" \u00b7 " + a[6]); }
      var model = node("div", "article-model",
        a[7] >= 0 ? "Record made by " + data.models[a[7]] : "No record of this article in the run");
      li.append(head, meta, model);
      if (TEXTS[n] === null) {
        li.append(node("p", "none", "The text of this article is not available in this run."));
      } else {
        var read = button("read-article", "Read the article");
        read.dataset.article = n;
        read.setAttribute("aria-expanded", "false");
        li.append(read);
      }
      list.append(li);
    });
    section.append(list);
    return section;
  }

  function toggleArticle(b) {
    var open = b.nextElementSibling;
    if (open && open.classList.contains("article-text")) {
      open.remove();
      b.setAttribute("aria-expanded", "false");
      b.textContent = "Read the article";
      return;
    }
    b.after(node("div", "article-text", TEXTS[Number(b.dataset.article)]));
    b.setAttribute("aria-expanded", "true");
    b.textContent = "Hide the article";
  }

  // ------------------------------------------------------------------ evidence in context

  function lineStart(text, i) { return i <= 0 ? 0 : text.lastIndexOf("\n", i - 1) + 1; }
  function lineEnd(text, i) {
    var j = text.indexOf("\n", i);
    return j < 0 ? text.length : j;
  }

  // The text shown around a quote: its paragraph and the one either side of it, cut to CONTEXT
  // units either side at a space (which never splits a character JavaScript stores as two units).
  function around(text, start, end) {
    var from = lineStart(text, start);
    var to = lineEnd(text, end);
    var p = from;
    while (p > 0 && /\s/.test(text[p - 1])) { p -= 1; }
    if (p > 0) { from = lineStart(text, p); }
    var q = to;
    while (q < text.length && /\s/.test(text[q])) { q += 1; }
    if (q < text.length) { to = lineEnd(text, q); }
    if (start - from > CONTEXT) {
      var cut = text.indexOf(" ", start - CONTEXT);
      from = cut >= 0 && cut < start ? cut + 1 : start;
    }
    if (to - end > CONTEXT) {
      var stop = text.lastIndexOf(" ", end + CONTEXT);
      to = stop > end ? stop : end;
    }
    return [from, to];
  }

  function fillPanel(panel, c, whole) {
    panel.textContent = "";
    var article = ARTICLES[c[0]];
    var text = TEXTS[c[0]];
    var status = S[c[2]];
    var start = c[4];
    var end = c[5];
    var head = node("div", "context-head");
    head.append(node("strong", "outlet", article[1]));
    if (article[2]) { head.append(" \u2014 ", node("span", "article-title", article[2])); }
    head.append(" \u00b7 " + (article[3] || "no date") + " \u00b7 " + S[c[1]]);
    var tools = node("span", "context-tools");
    if (text !== null) { tools.append(button("whole-article", whole ? "Context only" : "Whole article")); }
    tools.append(button("close-context", "Close (Esc)"));
    head.append(tools);
    var note = node("p", "quote-note");
    panel.append(head, note);
    if (text === null) {
      note.textContent = "The text of this article is not available in this run.";
      return;
    }
    var located = status !== "unfound" && status !== "ungrounded" && typeof start === "number" &&
      typeof end === "number" && start <= end && end <= text.length;
    if (status === "ungrounded") {
      note.textContent = "Not checked: this value was never located in the article (its text was not available when it was reconciled).";
    } else if (!located) {
      // Unfound quotes have no span: say so instead of highlighting something else.
      note.textContent = "Quote not found in article: \u201c" + quoteOf(c) + "\u201d";
    } else if (status !== "exact") {
      note.textContent = "Located by " + status + " match (the article's wording differs slightly).";
    }
    if (!located && !whole) { return; }
    var box = node("div", whole ? "context-text whole" : "context-text");
    var span = located && !whole ? around(text, start, end) : [0, text.length];
    if (span[0] > 0) { box.append("\u2026 "); }
    if (located) {
      box.append(text.slice(span[0], start), node("mark", "quote-highlight", text.slice(start, end)), text.slice(end, span[1]));
    } else {
      box.append(text);
    }
    if (span[1] < text.length) { box.append(" \u2026"); }
    panel.append(box);
  }

  function citationOf(b) {
    var at = b.dataset.cite.split(",").map(Number);
    return byId[shown].fields[at[0]][4][at[1]][4][at[2]];
  }

  function openEvidence(b) {
    closeEvidence(false);
    var row = node("tr", "context-row");
    var cell = node("td");
    cell.colSpan = 4;
    var panel = node("div", "context");
    panel.setAttribute("role", "region");
    panel.setAttribute("aria-label", "Evidence in context");
    cell.append(panel);
    row.append(cell);
    evidence = { button: b, row: row, panel: panel, citation: citationOf(b), whole: false };
    fillPanel(panel, evidence.citation, false);
    b.closest("tr.field").after(row);
    b.setAttribute("aria-expanded", "true");
    reveal();
  }

  // Keeps the highlighted quote (or the panel) on screen with the least scrolling: the panel opens
  // right below the field, so the reader's place on the page stays where it was.
  function reveal() {
    var mark = evidence.panel.querySelector("mark");
    (mark || evidence.panel).scrollIntoView({ block: "nearest" });
  }

  function closeEvidence(refocus) {
    if (evidence === null) { return; }
    evidence.row.remove();
    evidence.button.setAttribute("aria-expanded", "false");
    if (refocus) { evidence.button.focus(); }
    evidence = null;
  }

  // ------------------------------------------------------------------ filters and navigation

  function applyFieldFilter() {
    var checked = fieldFilter.querySelector("input:checked");
    var which = checked ? checked.value : "all";
    document.body.dataset.fields = which;
    var any = false;
    detail.querySelectorAll("tr.field").forEach(function (tr) {
      var visible = which === "all" || (which === "flagged" ? tr.classList.contains("flagged") : tr.dataset.verdict === which);
      if (visible) { any = true; }
      if (!visible && evidence && evidence.button.closest("tr.field") === tr) { closeEvidence(false); }
    });
    detail.classList.toggle("nothing-shown", !any);
  }

  function show(id, scroll) {
    closeEvidence(false);
    if (shown !== null && rowById[shown]) { rowById[shown].removeAttribute("aria-current"); }
    shown = id;
    drawIncident(byId[id]);
    var row = rowById[id];
    row.setAttribute("aria-current", "true");
    // Bring the row into view inside the index's own scroll box, without moving the page.
    var box = row.closest(".index-scroll");
    var r = row.getBoundingClientRect();
    var b = box.getBoundingClientRect();
    if (r.top < b.top || r.bottom > b.bottom) { box.scrollTop += r.top - b.top - b.height / 3; }
    if (scroll && detail.getBoundingClientRect().top < 0) { detail.scrollIntoView({ block: "start" }); }
    applyFieldFilter();
    updateNav();
  }

  function hashId() {
    var hash;
    try { hash = decodeURIComponent(location.hash.slice(1)); } catch (e) { return null; }
    return hash.indexOf("incident-") === 0 && byId[hash.slice(9)] ? hash.slice(9) : null;
  }

  // The fragment names the incident on screen, so Back and Forward walk the incidents a reviewer
  // looked at, and a link to one incident can be shared.
  // No fragment (the page as opened, or Back to it) shows the first incident in review order;
  // another fragment (#decisions) leaves the incident as it is.
  function route() {
    var id = hashId();
    if (id === null && (location.hash.length <= 1 || shown === null)) {
      var first = rows.filter(function (row) { return !row.hidden; })[0] || rows[0];
      id = first ? first.dataset.id : null;
    }
    if (id !== null && id !== shown) { show(id, shown !== null); }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var b = target.closest("button");
    if (b && b.classList.contains("evidence")) {
      if (evidence && evidence.button === b) { closeEvidence(true); } else { openEvidence(b); }
    } else if (b && b.classList.contains("close-context")) {
      closeEvidence(true);
    } else if (b && b.classList.contains("whole-article") && evidence) {
      evidence.whole = !evidence.whole;
      fillPanel(evidence.panel, evidence.citation, evidence.whole);
      evidence.panel.querySelector("button.whole-article").focus();
      reveal();
    } else if (b && b.classList.contains("read-article")) {
      toggleArticle(b);
    } else if (b && b.dataset.step) {
      var to = neighbour(Number(b.dataset.step));
      if (to) { location.hash = "incident-" + to.dataset.id; }
    } else {
      // A click anywhere on an index row opens its incident, not only on its title.
      var row = target.closest("#index tbody tr");
      if (row && !target.closest("a")) { location.hash = "incident-" + row.dataset.id; }
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && evidence !== null) {
      event.preventDefault();
      closeEvidence(true);
    }
  });

  search.addEventListener("input", applyIndexFilter);
  verdictFilter.addEventListener("change", applyIndexFilter);
  stateFilter.addEventListener("change", applyIndexFilter);
  fieldFilter.addEventListener("change", applyFieldFilter);
  window.addEventListener("hashchange", route);
  // A reload keeps what was typed in the search box and chosen in the filters: apply them first.
  applyIndexFilter();
  applyFieldFilter();
  route();
})();
