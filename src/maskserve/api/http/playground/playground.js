// The maskserve playground: one form that calls the server's Hugging Face Inference API routes
// (POST /models/{name}, and /score) and shows each mask's candidates as bars, or each word's log-probability
// as a colour and a bar. Nothing is stored on the server.
"use strict";

(function () {
  const models = JSON.parse(document.getElementById("models").textContent || "[]");
  // Each parameter's default and bounds, served from the server's one declaration of them.
  const bounds = JSON.parse(document.getElementById("parameters").textContent || "{}");
  const $ = (id) => document.getElementById(id);

  function bind(id, name) {
    const input = $(id);
    const spec = bounds[name] || {};
    if (spec.min !== undefined) input.min = spec.min;
    if (spec.max !== undefined) input.max = spec.max;
    if (spec.default !== undefined && spec.default !== null) input.value = spec.default;
  }
  bind("top-k", "top_k");
  bind("max-subwords", "max_subwords");
  const form = $("form");
  const select = $("model");
  const text = $("text");
  const maskToken = $("mask-token");
  const insertMask = $("insert-mask");
  const progress = $("progress");
  const errorBox = $("error");
  const results = $("results");
  let lastExample = "";
  let inFlight = null;

  function example(mask) {
    return "The capital of France is " + mask + ".";
  }

  function current() {
    return models.find((m) => m.name === select.value) || models[0];
  }

  function showModel() {
    const model = current();
    const mask = model && model.mask_token;
    maskToken.textContent = mask || "(known once the model is loaded)";
    insertMask.disabled = !mask;
    $("model-state").textContent = model && model.state !== "ready" ? "(" + model.state + ")" : "";
    if (mask && (text.value === "" || text.value === lastExample)) {
      lastExample = example(mask);
      text.value = lastExample;
    }
  }

  for (const model of models) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = model.name;
    select.appendChild(option);
  }
  select.addEventListener("change", showModel);
  showModel();

  insertMask.addEventListener("click", () => {
    const mask = current().mask_token;
    if (!mask) return;
    text.focus();
    text.setRangeText(mask, text.selectionStart, text.selectionEnd, "end");
  });

  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  function scoring() {
    return $("mode-score").checked;
  }

  function showMode() {
    const score = scoring();
    for (const element of document.querySelectorAll(".fill-only")) element.hidden = score;
    for (const element of document.querySelectorAll(".score-only")) element.hidden = !score;
    $("fill").textContent = score ? "Score" : "Fill mask";
    results.textContent = "";
    errorBox.hidden = true;
  }
  $("mode-fill").addEventListener("change", showMode);
  $("mode-score").addEventListener("change", showMode);

  function parameters() {
    if (scoring()) return { metric: $("metric").value, words: true };
    const params = {};
    const topK = parseInt($("top-k").value, 10);
    if (!Number.isNaN(topK)) params.top_k = topK;
    const targets = $("targets").value.split(",").map((t) => t.trim()).filter((t) => t);
    if (targets.length) params.targets = targets;
    if ($("word-targets").checked && targets.length) params.target_scoring = "word";
    if ($("whole-word").checked) {
      params.whole_word = true;
      const pieces = parseInt($("max-subwords").value, 10);
      if (!Number.isNaN(pieces)) params.max_subwords = pieces;
    }
    if ($("joint").checked) params.decoding = "joint";
    return params;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function percent(score) {
    // Below 0.1 % a fixed 0.000% would hide the number: a whole-word target can be 1e-11 likely.
    const value = score * 100;
    if (score >= 0.001) return value.toFixed(1) + "%";
    return (score === 0 ? "0" : value.toExponential(1)) + "%";
  }

  function label(candidate) {
    if (candidate.token_strs) return candidate.token_strs.map((t) => t.trim()).join(" ");
    return candidate.token_str;
  }

  // Deep red for the most surprising word of the sentence, white for a word the model expected.
  function surpriseColour(share) {
    const light = Math.round(100 - 45 * share);
    return "hsl(6, 78%, " + light + "%)";
  }

  function renderScore(answer) {
    results.textContent = "";
    const section = document.createElement("section");
    section.className = "mask";
    const heading = document.createElement("h2");
    heading.textContent = "Each word's log-probability";
    section.appendChild(heading);
    const totals = document.createElement("p");
    totals.className = "totals";
    totals.textContent = "score " + answer.score.toFixed(3) + " over " + answer.num_tokens + " tokens, pseudo-perplexity " +
      answer.pseudo_perplexity.toFixed(2);
    section.appendChild(totals);
    const worst = Math.min(...answer.words.map((w) => w.logprob), -1e-9);
    const sentence = document.createElement("p");
    sentence.className = "sentence";
    let at = 0;
    for (const word of answer.words) {
      sentence.append(text.value.slice(at, word.start));
      const span = document.createElement("span");
      span.className = "word";
      span.textContent = word.word;
      span.title = word.word + ": log-probability " + word.logprob.toFixed(3);
      span.style.background = surpriseColour(word.logprob / worst);
      sentence.appendChild(span);
      at = word.end;
    }
    sentence.append(text.value.slice(at));
    section.appendChild(sentence);
    const list = document.createElement("ol");
    list.className = "candidates";
    for (const word of answer.words) {
      const item = document.createElement("li");
      item.className = "candidate word-score";
      const label = document.createElement("span");
      label.className = "token";
      label.textContent = word.word;
      const bar = document.createElement("span");
      bar.className = "bar surprise";
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      bar.setAttribute("aria-valuenow", ((100 * word.logprob) / worst).toFixed(1));
      bar.setAttribute("aria-label", word.word + " surprise");
      const fill = document.createElement("span");
      fill.style.width = Math.max(0, Math.min(100, (100 * word.logprob) / worst)) + "%";
      bar.appendChild(fill);
      const value = document.createElement("span");
      value.className = "percent logprob";
      value.textContent = word.logprob.toFixed(3);
      item.append(label, bar, value);
      list.appendChild(item);
    }
    section.appendChild(list);
    results.appendChild(section);
  }

  function render(answer) {
    results.textContent = "";
    // One mask: a list of candidates; several: a list per mask; a joint decoding: one list of hypotheses.
    const lists = Array.isArray(answer[0]) ? answer : [answer];
    lists.forEach((candidates, index) => {
      const section = document.createElement("section");
      section.className = "mask";
      const heading = document.createElement("h2");
      const joint = candidates.length && candidates[0].token_strs;
      heading.textContent = joint ? "All masks, decoded together" : lists.length > 1 ? "Mask " + (index + 1) : "Candidates";
      section.appendChild(heading);
      if (candidates.length) {
        const best = document.createElement("p");
        best.className = "best";
        best.textContent = candidates[0].sequence;
        section.appendChild(best);
      }
      const list = document.createElement("ol");
      list.className = "candidates";
      for (const candidate of candidates) {
        const item = document.createElement("li");
        item.className = candidate.token_strs ? "candidate joint" : "candidate";
        const token = document.createElement("span");
        token.className = "token";
        token.textContent = label(candidate);
        const bar = document.createElement("span");
        bar.className = "bar";
        bar.setAttribute("role", "meter");
        bar.setAttribute("aria-valuemin", "0");
        bar.setAttribute("aria-valuemax", "100");
        bar.setAttribute("aria-valuenow", (candidate.score * 100).toFixed(3));
        bar.setAttribute("aria-label", label(candidate));
        const fill = document.createElement("span");
        fill.style.width = Math.max(0, Math.min(100, candidate.score * 100)) + "%";
        bar.appendChild(fill);
        const value = document.createElement("span");
        value.className = "percent";
        value.textContent = percent(candidate.score);
        item.append(token, bar, value);
        list.appendChild(item);
      }
      section.appendChild(list);
      results.appendChild(section);
    });
  }

  async function fill() {
    if (inFlight) inFlight.abort(); // a new request replaces the one in flight
    const controller = new AbortController();
    inFlight = controller;
    errorBox.hidden = true;
    const score = scoring();
    progress.textContent = score ? "Scoring…" : "Filling…";
    results.setAttribute("aria-busy", "true");
    const headers = { "Content-Type": "application/json" };
    const key = $("api-key").value.trim();
    if (key) headers.Authorization = "Bearer " + key;
    try {
      const route = "models/" + encodeURIComponent(select.value).replace(/%2F/g, "/") + (score ? "/score" : "");
      const response = await fetch(route, {
        method: "POST",
        headers,
        body: JSON.stringify({ inputs: text.value, parameters: parameters() }),
        signal: controller.signal,
      });
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
      if (!response.ok) {
        let message = (body && body.error) || "HTTP " + response.status;
        if (response.status === 503 && body && body.estimated_time) {
          message += " (estimated time: " + Math.round(body.estimated_time) + " s; send it again then)";
        } else if (response.status === 429 && response.headers.get("Retry-After")) {
          message += " (retry after " + response.headers.get("Retry-After") + " s)";
        } else if (response.status === 401) {
          $("api-key").focus();
        }
        showError(message);
        results.textContent = "";
        return;
      }
      if (score) renderScore(body);
      else render(body);
    } catch (error) {
      if (error.name !== "AbortError") showError("The request failed: " + error.message);
    } finally {
      if (inFlight === controller) {
        inFlight = null;
        progress.textContent = "";
        results.removeAttribute("aria-busy");
      }
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    fill();
  });
})();
