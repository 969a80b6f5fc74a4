/* Orthodex progressive enhancement. Every page works without this file; it only adds:
   1. suggestions while typing in inputs marked data-suggest (the WAI-ARIA 1.2 combobox pattern
      with a listbox popup: arrow keys move, Enter picks, Escape closes), and
   2. focus on a form's error summary, so screen readers read the errors as the page opens.
   No inline script or style anywhere: the Content-Security-Policy forbids both. */
(function () {
  "use strict";

  var MIN_CHARS = 2;
  var MAX_SHOWN = 6;
  var DELAY_MS = 150;

  function phraseOf(why) {
    // The API says why a condition matched: "tennis elbow -> Lateral epicondylitis (M77.1-)".
    var arrow = why.indexOf(" -> ");
    return arrow > 0 ? why.slice(0, arrow) : "";
  }

  function enhance(input) {
    var listId = input.id + "-suggestions";
    var list = document.createElement("ul");
    list.id = listId;
    list.className = "suggestions";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Suggestions");
    list.hidden = true;
    input.parentNode.appendChild(list);

    var status = document.createElement("div");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    input.parentNode.appendChild(status);

    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", listId);

    var timer = null;
    var pending = null;
    var active = -1;
    var items = [];

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function highlight(index) {
      var options = list.children;
      for (var i = 0; i < options.length; i++) {
        options[i].setAttribute("aria-selected", i === index ? "true" : "false");
      }
      active = index;
      if (index >= 0) {
        input.setAttribute("aria-activedescendant", options[index].id);
        options[index].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function choose(index) {
      input.value = items[index].name;
      close();
      status.textContent = items[index].name + " chosen.";
      input.focus();
    }

    function show(found) {
      items = found.slice(0, MAX_SHOWN);
      list.textContent = "";
      items.forEach(function (item, i) {
        var option = document.createElement("li");
        option.id = listId + "-" + i;
        option.className = "suggestion";
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", "false");
        var name = document.createElement("span");
        name.className = "suggestion__name";
        name.textContent = item.name;
        option.appendChild(name);
        var phrase = phraseOf(item.why);
        if (phrase && phrase.toLowerCase() !== item.name.toLowerCase()) {
          var why = document.createElement("span");
          why.className = "suggestion__why";
          why.textContent = "also called " + phrase;
          option.appendChild(why);
        }
        // mousedown, not click: picking must happen before the input loses focus.
        option.addEventListener("mousedown", function (event) {
          event.preventDefault();
          choose(i);
        });
        list.appendChild(option);
      });
      if (items.length) {
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
        status.textContent = items.length + (items.length === 1 ? " suggestion" : " suggestions") +
          ". Use the up and down arrow keys to choose.";
      } else {
        close();
        status.textContent = "";
      }
      active = -1;
    }

    function fetchSuggestions() {
      var query = input.value.trim();
      if (query.length < MIN_CHARS) {
        close();
        return;
      }
      if (pending) {
        pending.abort();
      }
      pending = new AbortController();
      fetch(input.getAttribute("data-suggest") + "?q=" + encodeURIComponent(query), {
        headers: { Accept: "application/json" },
        signal: pending.signal
      })
        .then(function (response) { return response.ok ? response.json() : { items: [] }; })
        .then(function (body) {
          if (input.value.trim() === query && document.activeElement === input) {
            show(body.items || []);
          }
        })
        .catch(function () { /* Offline or aborted: the plain form still works. */ });
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(fetchSuggestions, DELAY_MS);
    });

    input.addEventListener("keydown", function (event) {
      var open = !list.hidden && items.length > 0;
      if (event.key === "ArrowDown") {
        if (open) {
          event.preventDefault();
          highlight((active + 1) % items.length);
        } else if (input.value.trim().length >= MIN_CHARS) {
          event.preventDefault();
          fetchSuggestions();
        }
      } else if (event.key === "ArrowUp" && open) {
        event.preventDefault();
        highlight(active <= 0 ? items.length - 1 : active - 1);
      } else if (event.key === "Enter" && open && active >= 0) {
        // Enter on a highlighted suggestion picks it; otherwise Enter submits the form as usual.
        event.preventDefault();
        choose(active);
      } else if (event.key === "Escape" && open) {
        event.preventDefault();
        close();
      }
    });

    input.addEventListener("blur", close);
  }

  function start() {
    var inputs = document.querySelectorAll("input[data-suggest]");
    for (var i = 0; i < inputs.length; i++) {
      enhance(inputs[i]);
    }
    var summary = document.querySelector("[data-error-summary]");
    if (summary) {
      summary.focus();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
