// crmproxy pane: live updates and Outlook integration. Every page works without it.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var csrf = main ? main.getAttribute("data-csrf") : null;

  // Current message: reload when the mail client opens another message, or when
  // its tracking changed. A record: reload when it (or its timeline) changed, here
  // or in another process on the team's CRM.
  var live = document.querySelector('[data-live="current"]');
  var record = document.querySelector("[data-live-record]");
  if ((live || record) && window.EventSource) {
    var source = new EventSource("/events");
    if (live) {
      source.addEventListener("message-opened", function (e) {
        try {
          var ev = JSON.parse(e.data);
          if (ev.message_id !== live.getAttribute("data-shown")) { window.location.reload(); }
        } catch (err) { /* a malformed event changes nothing */ }
      });
    }
    source.addEventListener("crm-changed", function (e) {
      try {
        var ev = JSON.parse(e.data);
        var shown = live ? live.getAttribute("data-shown") : null;
        var id = record ? record.getAttribute("data-live-record") : null;
        if ((shown && (ev.message_ids || []).indexOf(shown) >= 0) ||
            (id && (ev.records || []).indexOf(id) >= 0)) {
          window.location.reload();
        }
      } catch (err) { /* a malformed event changes nothing */ }
    });
  }

  // Inside Outlook (Office.js is loaded only there): follow the selected item. An item
  // already followed in this pane is not followed again, so that the user can move
  // around the pane freely until Outlook selects another item.
  if (!csrf || !window.Office || !window.Office.onReady) { return; }
  function follow() {
    var mailbox = window.Office.context && window.Office.context.mailbox;
    var item = mailbox && mailbox.item;
    if (!item || !item.internetMessageId) { return; }
    var id = item.internetMessageId.replace(/^<|>$/g, "");
    var seen = null;
    try { seen = window.sessionStorage.getItem("crmproxy-item"); } catch (err) { /* storage off */ }
    if (seen === id) { return; }
    try { window.sessionStorage.setItem("crmproxy-item", id); } catch (err) { /* storage off */ }
    var target = "/message?id=" + encodeURIComponent(id);
    var body = { message_id: id, subject: item.subject || null,
                 from: item.from ? item.from.emailAddress : null };
    fetch("/api/current", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).finally(function () {
      if (window.location.pathname + window.location.search !== target) { window.location.assign(target); }
    });
  }
  window.Office.onReady(function () {
    follow();
    var mailbox = window.Office.context && window.Office.context.mailbox;
    if (mailbox && mailbox.addHandlerAsync && window.Office.EventType) {
      mailbox.addHandlerAsync(window.Office.EventType.ItemChanged, follow);
    }
  });
})();
