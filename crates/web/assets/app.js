// SwiftDrop's one script. The pages work without it; it adds live data
// over /ws (stock, event status, leaderboards, orders, notifications),
// ticks countdowns and retries after a busy server's Retry-After.
(function () {
  "use strict";

  var userId = null;
  var all = function (selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); };

  // ---- countdowns: <time datetime data-countdown>
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function describe(ms) {
    if (ms <= 0) { return "now"; }
    var s = Math.floor(ms / 1000);
    var d = Math.floor(s / 86400); s -= d * 86400;
    var h = Math.floor(s / 3600); s -= h * 3600;
    var m = Math.floor(s / 60); s -= m * 60;
    if (d > 0) { return "in " + d + "d " + h + "h " + pad(m) + "m"; }
    if (h > 0) { return "in " + h + "h " + pad(m) + "m " + pad(s) + "s"; }
    return "in " + m + "m " + pad(s) + "s";
  }
  function tick() {
    var now = Date.now();
    all("time[data-countdown]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) { return; }
      if (!el.title) { el.title = el.textContent; }
      el.textContent = describe(at - now);
    });
  }

  // ---- busy server: retry after Retry-After
  function retries() {
    all("[data-retry-after]").forEach(function (el) {
      var seconds = parseInt(el.getAttribute("data-retry-after"), 10) || 1;
      setTimeout(function () {
        var form = document.querySelector("form.stack");
        if (form) {
          var empty = all("input[required]", form).filter(function (i) { return !i.value; });
          if (empty.length === 0) { form.submit(); return; }
          el.textContent = "You can try again now.";
          empty[0].focus();
        } else if (el.closest("article")) {
          el.textContent = "You can try again now.";
        } else {
          location.reload();
        }
      }, seconds * 1000);
    });
  }

  // ---- live data
  function money(cents, currency) {
    var sign = cents < 0 ? "-" : "";
    var abs = Math.abs(cents);
    var amount = Math.floor(abs / 100) + "." + pad(abs % 100);
    var symbols = { EUR: "€", USD: "$", GBP: "£" };
    var c = (currency || "EUR").toUpperCase();
    return symbols[c] ? sign + symbols[c] + amount : sign + amount + " " + c;
  }

  function applyStock(msg) {
    all('[data-item-id="' + msg.item_id + '"]').forEach(function (el) {
      var shown = parseInt(el.getAttribute("data-stock-version"), 10);
      if (typeof msg.version === "number" && !isNaN(shown) && msg.version < shown) { return; }
      if (typeof msg.version === "number") { el.setAttribute("data-stock-version", String(msg.version)); }
      all("[data-stock-bar]", el).forEach(function (bar) { bar.value = msg.stock_remaining; });
      all("[data-stock-remaining]", el).forEach(function (n) { n.textContent = String(msg.stock_remaining); });
      all("[data-buy]", el).forEach(function (b) { b.disabled = msg.stock_remaining <= 0; });
    });
  }

  function applyStatus(msg) {
    all('[data-event-status="' + msg.event_id + '"]').forEach(function (el) {
      var before = el.textContent.trim();
      if (before === msg.status) { return; }
      el.textContent = msg.status;
      // The event page shows buy buttons only while live: reload it when
      // that changes (nothing typed is lost: the forms hold a quantity).
      var page = document.querySelector('article.event[data-event-id="' + msg.event_id + '"]');
      if (page && (before === "live" || msg.status === "live" || before === "scheduled")) {
        setTimeout(function () { location.reload(); }, 300);
      }
    });
  }

  function applyBoard(msg) {
    var article = document.querySelector('article.auction[data-auction-id="' + msg.auction_id + '"]');
    if (!article) { return; }
    var body = article.querySelector("[data-leaderboard]");
    var currency = body ? body.getAttribute("data-currency") : "EUR";
    var mine = null;
    if (body) {
      while (body.firstChild) { body.removeChild(body.firstChild); }
      (msg.entries || []).forEach(function (e) {
        var tr = document.createElement("tr");
        if (userId && e.user_id === userId) { tr.className = "mine"; mine = e; }
        [String(e.rank), e.username, money(e.bid_cents, currency), Number(e.score).toFixed(4)].forEach(function (text) {
          var td = document.createElement("td");
          td.textContent = text;
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    }
    all("[data-bidders]", article).forEach(function (el) { el.textContent = String(msg.bidders); });
    all("[data-auction-status]", article).forEach(function (el) { el.textContent = msg.status; });
    if (msg.end_time) {
      all("[data-auction-end]", article).forEach(function (el) { el.setAttribute("datetime", msg.end_time); });
    }
    if (mine) {
      all("[data-my-standing]", article).forEach(function (el) {
        while (el.firstChild) { el.removeChild(el.firstChild); }
        var strong = function (attr, text) {
          var s = document.createElement("strong");
          s.setAttribute(attr, "");
          s.textContent = text;
          return s;
        };
        el.appendChild(document.createTextNode("Rank "));
        el.appendChild(strong("data-my-rank", String(mine.rank)));
        el.appendChild(document.createTextNode(" with a bid of " + money(mine.bid_cents, currency) + ", score "));
        el.appendChild(strong("data-my-score", Number(mine.score).toFixed(4)));
        el.appendChild(document.createTextNode("."));
      });
    }
  }

  function applyOrder(msg) {
    all('[data-order-id="' + msg.order_id + '"]').forEach(function (el) {
      if (el.getAttribute("data-order-status") !== msg.status) {
        setTimeout(function () { location.reload(); }, 300);
      }
    });
  }

  function applyNotification(msg) {
    all("[data-unread-count]").forEach(function (el) {
      var text = el.textContent.trim();
      if (text.slice(-1) === "+") { return; }
      el.textContent = String((parseInt(text, 10) || 0) + 1);
    });
    all("[data-notification-list]").forEach(function (list) {
      var li = document.createElement("li");
      var what = msg.notification_type || "notification";
      if (msg.event && msg.event.title) {
        var a = document.createElement("a");
        a.href = "/events/" + msg.event.id;
        a.textContent = what + ": " + msg.event.title;
        li.appendChild(a);
      } else if (msg.auction && msg.auction.id) {
        var link = document.createElement("a");
        link.href = "/auctions/" + msg.auction.id;
        link.textContent = what;
        li.appendChild(link);
      } else {
        li.textContent = what;
      }
      var placeholder = list.querySelector(".muted");
      if (placeholder) { list.removeChild(placeholder); }
      list.insertBefore(li, list.firstChild);
      while (list.children.length > 8) { list.removeChild(list.lastChild); }
    });
  }

  function topics() {
    var events = {}, auctions = {};
    all("[data-event-id]").forEach(function (el) { events[el.getAttribute("data-event-id")] = true; });
    all("[data-auction-id]").forEach(function (el) { auctions[el.getAttribute("data-auction-id")] = true; });
    return { events: Object.keys(events), auctions: Object.keys(auctions) };
  }

  var attempts = 0;
  function connect() {
    var t = topics();
    var signedIn = document.body.getAttribute("data-signed-in") === "true";
    if (!signedIn && t.events.length === 0 && t.auctions.length === 0) { return; }
    var ws;
    try {
      ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    } catch (e) { return; }
    ws.onopen = function () {
      attempts = 0;
      t.events.forEach(function (id) { ws.send(JSON.stringify({ type: "subscribe", event_id: id })); });
      t.auctions.forEach(function (id) { ws.send(JSON.stringify({ type: "subscribe", auction_id: id })); });
    };
    ws.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      switch (msg.type) {
        case "ready": userId = msg.user_id || null; break;
        case "stock": applyStock(msg); break;
        case "event.status": applyStatus(msg); break;
        case "leaderboard": applyBoard(msg); break;
        case "order": applyOrder(msg); break;
        case "notification": applyNotification(msg); break;
        default: break;
      }
    };
    ws.onclose = function (event) {
      if (event.code === 4401) { return; }
      attempts += 1;
      var delay = Math.min(30000, 1000 * Math.pow(2, Math.min(attempts, 5))) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }

  document.documentElement.classList.add("js");
  tick();
  setInterval(tick, 1000);
  retries();
  connect();
  window.swiftdrop = { connected: true };
}());
