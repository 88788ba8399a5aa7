// The message thread of one trade: parties post while it is in progress, admins
// read (and post) once it is disputed. Messages are plain text (textContent).

import { describeError } from "../../p2p/errors.js";
import { checkText } from "../../p2p/params.js";
import { canPost, canReadThread } from "../../p2p/rules.js";
import { dateTimeOf } from "../../format.js";
import { h, showError } from "../dom.js";

export function mountThread(root, { store }) {
  const list = root.querySelector(".thread-list");
  const form = root.querySelector("form");
  const input = form.elements.body;
  const errBox = form.querySelector(".form-error");
  const note = root.querySelector(".thread-note");
  let trade = null;
  let party = null;
  let busy = false;

  const renderList = () => {
    if (!trade) return;
    const msgs = store.thread(trade.id);
    const me = store.me;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    if (!msgs) {
      list.replaceChildren(h("li.muted", "Loading messages…"));
      return;
    }
    list.replaceChildren(
      ...(msgs.length ? [] : [h("li.muted.thread-empty", "No messages yet.")]),
      ...msgs.map((m) => {
        const mine = me && String(m.from) === me.id;
        return h(
          `li.msg.msg-${m.role}${mine ? ".mine" : ""}`,
          h("div.msg-meta", h("span.msg-who", mine ? "you" : `${m.role} #${m.from}`), h("span.muted", dateTimeOf(m.ts))),
          h("div.msg-body", m.body),
        );
      }),
    );
    if (atBottom || msgs.length <= 1) list.scrollTop = list.scrollHeight;
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!trade || busy) return;
    const r = checkText(input.value, "a message");
    if (!r.ok) return showError(errBox, r.error);
    busy = true;
    showError(errBox, null);
    try {
      await store.postMessage(trade.id, r.text);
      input.value = "";
      list.scrollTop = list.scrollHeight;
    } catch (err) {
      showError(errBox, describeError(err));
    } finally {
      busy = false;
    }
  });

  store.on("messages", (id) => trade && id === trade.id && renderList());

  return {
    /** Show the thread of `t` for `p` (party); loads it the first time. */
    show(t, p) {
      const changed = !trade || !t || trade.id !== t.id;
      trade = t;
      party = p;
      root.hidden = !t || !canReadThread(t, p);
      if (root.hidden) return;
      if (changed) {
        input.value = "";
        showError(errBox, null);
      }
      if (!store.thread(t.id)) store.loadMessages(t.id);
      input.placeholder = party === "admin" ? "Write to both parties…" : "Write to the other party…";
      const open = canPost(t, party);
      form.hidden = !open;
      note.hidden = open;
      note.textContent = open ? "" : "The thread is read-only now.";
      renderList();
    },
  };
}
