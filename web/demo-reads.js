// nerve demo page: read receipts. The room is marked read (`room.markRead()`) when its newest
// message is on screen; until then a "N unread" pill (and the tab title) counts what others
// wrote since (`room.unread`), and a click on it scrolls down. Your newest message says who
// has read it ("Seen by bob", from `room.readPositions`). Sets `window.NerveDemoReads`.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const TITLE = document.title;

  /** @param {object} deps @param {() => any} deps.getClient the connected NerveClient, if any */
  function create({ getClient }) {
    const log = $('chat-log');
    let room;
    let stopListening = () => {};
    let timer;
    /** The offset a `markRead` in flight asked for (0: none in flight). */
    let marking = 0;

    function attach(r) {
      detach();
      room = r;
      stopListening = r.on('read', () => refresh());
    }

    function detach() {
      stopListening();
      stopListening = () => {};
      room = undefined;
      clearTimeout(timer);
      render();
    }

    /** Something moved (messages drawn, a scroll, a read push): redraw, and mark read soon if the newest message is in view. */
    function refresh() {
      render();
      clearTimeout(timer);
      // Soon, not at once: a burst of messages or scroll events makes one `read`; with one in flight at a
      // time that stays under its rate limit (5 per second) in a busy room.
      timer = setTimeout(markIfInView, 300);
    }

    function markIfInView() {
      const r = room;
      const newest = r?.position?.offset ?? 0;
      if (!r || marking !== 0 || (newest <= r.read && r.unread === 0) || !newestInView()) return;
      marking = newest;
      r.markRead()
        .catch(() => {
          // Not joined any more, rate-limited, the store down: the next scroll or message tries again.
        })
        .finally(() => {
          const asked = marking;
          marking = 0;
          if (r !== room) return;
          render();
          if ((r.position?.offset ?? 0) > asked) refresh();
        });
    }

    /** The newest message is on screen: the log is scrolled to it and the log itself is in the window, in a visible tab. */
    function newestInView() {
      if (document.visibilityState !== 'visible' || $('room-view').hidden) return false;
      const items = log.querySelectorAll('li[data-offset]');
      const last = items[items.length - 1];
      if (!last) return true;
      const box = last.getBoundingClientRect();
      const area = log.getBoundingClientRect();
      return box.bottom <= area.bottom + 1 && box.top >= area.top - 1 && box.top < window.innerHeight && box.bottom > 0;
    }

    function render() {
      const r = room;
      const unread = r ? r.unread : 0;
      const show = unread > 0 && !newestInView();
      const pill = $('unread');
      pill.hidden = !show;
      // The server counts up to 100 at a join: "100+" then.
      const count = unread >= 100 ? '100+' : String(unread);
      pill.textContent = `↓ ${count} unread`;
      document.title = show ? `(${count}) ${TITLE}` : TITLE;
      // "Seen by" makes the last message taller: a reader at the bottom stays there.
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
      renderSeen(r);
      if (atBottom) log.scrollTop = log.scrollHeight;
    }

    /** "Seen by …" under your newest message: the members whose read position reached it. */
    function renderSeen(r) {
      for (const old of log.querySelectorAll('.seen')) old.remove();
      const me = getClient()?.user;
      const mine = log.querySelectorAll('li.mine[data-offset]:not(.deleted)');
      const newest = mine[mine.length - 1];
      if (!r || !newest) return;
      const offset = Number(newest.dataset.offset);
      const readers = [...r.readPositions].filter(([user, at]) => user !== me && at >= offset).map(([user]) => user);
      if (readers.length === 0) return;
      const seen = document.createElement('div');
      seen.className = 'seen';
      seen.dataset.testid = 'seen';
      seen.textContent = `Seen by ${readers.sort().join(', ')}`;
      newest.append(seen);
    }

    $('unread').addEventListener('click', () => {
      log.scrollTop = log.scrollHeight;
      refresh();
    });
    log.addEventListener('scroll', () => refresh());
    window.addEventListener('scroll', () => refresh(), { passive: true });
    window.addEventListener('resize', () => refresh());
    document.addEventListener('visibilitychange', () => refresh());

    return { attach, detach, refresh };
  }

  window.NerveDemoReads = { create };
})();
