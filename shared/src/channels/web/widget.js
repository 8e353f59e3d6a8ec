// Assent web chat widget. Embed with:
//   <div id="assent-chat"></div>
//   <script src="https://YOUR-ASSENT-HOST/widget.js" defer></script>
// Options (data- attributes on the script tag): data-target (a CSS selector, default
// #assent-chat), data-title. No framework, no build step.
(function () {
  "use strict";
  var script = document.currentScript;
  var server = new URL(script.src, location.href).origin;
  var target = script.getAttribute("data-target") || "#assent-chat";
  var title = script.getAttribute("data-title") || "Chat with us";
  var storageKey = "assent.session." + server;

  var root = document.querySelector(target);
  if (!root) {
    root = document.createElement("div");
    document.body.appendChild(root);
  }
  root.classList.add("assent-chat");
  root.innerHTML =
    '<div class="assent-title"></div>' +
    '<div class="assent-log" role="log" aria-live="polite"></div>' +
    '<form class="assent-form"><input class="assent-input" autocomplete="off" ' +
    'aria-label="Your message" placeholder="Write a message"><button type="submit">Send</button></form>';
  root.querySelector(".assent-title").textContent = title;
  var log = root.querySelector(".assent-log");
  var form = root.querySelector(".assent-form");
  var input = root.querySelector(".assent-input");

  var token = null;
  var after = 0;
  // A server that cannot hold a poll open (Assent on AWS Lambda) names a pause between
  // polls (poll_again_ms). The widget keeps that pace while messages come, slows down to
  // at most MAX_PAUSE while none do, is quick again once the visitor writes, and does not
  // poll while its tab is hidden.
  var MAX_PAUSE = 30000;
  var basePause = 0;
  var pause = 0;
  var pollTimer = null;
  var polling = false;

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // Text with its links made clickable, built from text nodes (never innerHTML).
  function withLinks(element, text) {
    var pattern = /https?:\/\/[^\s<>"]+/g;
    var last = 0;
    var match;
    while ((match = pattern.exec(text))) {
      element.appendChild(document.createTextNode(text.slice(last, match.index)));
      var link = document.createElement("a");
      link.href = match[0];
      link.textContent = match[0];
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      element.appendChild(link);
      last = match.index + match[0].length;
    }
    element.appendChild(document.createTextNode(text.slice(last)));
  }

  function bubble(who, text) {
    var item = document.createElement("div");
    item.className = "assent-message assent-" + who;
    withLinks(item, text);
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function showDelivered(message) {
    // A question's moment has passed once anything comes after it.
    log.querySelectorAll(".assent-choices button").forEach(function (b) { b.disabled = true; });
    var item = bubble("business", message.text);
    if (!message.choices) return;
    var buttons = document.createElement("div");
    buttons.className = "assent-choices";
    message.choices.forEach(function (choice) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = choice.label;
      button.addEventListener("click", function () {
        buttons.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        bubble("visitor", choice.label);
        post({ choice: { id: choice.id, label: choice.label } });
      });
      buttons.appendChild(button);
    });
    item.appendChild(buttons);
  }

  function request(method, path, body) {
    var headers = { "content-type": "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    return fetch(server + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  // Posts with one id, retried until the server has it: a retry is a duplicate there.
  function post(fields, attempt) {
    fields.id = fields.id || newId();
    attempt = attempt || 0;
    return request("POST", "/webhooks/web", fields).then(function (response) {
      if (response.status >= 500) throw new Error("server " + response.status);
      if (response.status === 401) return restart();
      if (basePause) {
        pause = basePause;
        pollSoon(basePause);
      }
    }).catch(function () {
      setTimeout(function () { post(fields, attempt + 1); }, Math.min(30000, 1000 * Math.pow(2, attempt)));
    });
  }

  function pollSoon(ms) {
    if (polling) return;
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }

  // A hidden tab stops polling a server that is billed per poll, and catches up when shown.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && basePause) {
      pause = basePause;
      pollSoon(0);
    }
  });

  function poll() {
    if (polling) return;
    if (basePause && document.hidden) return;
    polling = true;
    request("GET", "/web/messages?after=" + after).then(function (response) {
      if (response.status === 401) {
        polling = false;
        return restart();
      }
      if (!response.ok) throw new Error("server " + response.status);
      return response.json().then(function (body) {
        polling = false;
        var fresh = false;
        body.messages.forEach(function (message) {
          if (message.seq > after) {
            after = message.seq;
            fresh = true;
            showDelivered(message);
          }
        });
        basePause = body.poll_again_ms || 0;
        if (!basePause) return poll(); // the server held this poll until news came
        pause = fresh ? basePause : Math.min(MAX_PAUSE, Math.max(pause, basePause) * 2);
        pollSoon(pause);
      });
    }).catch(function () {
      polling = false;
      pollSoon(2000);
    });
  }

  function restart() {
    localStorage.removeItem(storageKey);
    token = null;
    after = 0;
    return start();
  }

  function start() {
    token = localStorage.getItem(storageKey);
    if (token) return poll();
    return request("POST", "/web/session").then(function (response) {
      return response.json();
    }).then(function (body) {
      token = body.token;
      localStorage.setItem(storageKey, token);
      poll();
      return post({ opened: true });
    }).catch(function () {
      setTimeout(start, 2000);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    bubble("visitor", text);
    post({ text: text });
  });

  start();
})();
