// nerve demo page: the chat log. It shows the SDK's folded `room.messages`: edits,
// deletes and reactions are folded into the messages they target by the SDK (also in a
// join's history and in older pages), so an entry never shows as a message of its own.
// Each message has a small menu: react, and edit or delete your own. The page's own
// lines ("bob joined.") sit between the messages. Read receipts are demo-reads.js.
// Sets `window.NerveDemoChat`.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  /** The reactions the menu offers; any chip already on a message can be added to as well. */
  const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮'];

  /**
   * @param {object} deps
   * @param {() => any} deps.getClient the connected NerveClient, if any
   * @param {(error: unknown, ctx?: object) => string} deps.describe error → sentence
   * @param {(message: any) => void} deps.arrived a new message arrived (the page hides its author's typing line)
   * @param {() => void} deps.drawn messages were drawn or redrawn (read receipts look again)
   */
  function create({ getClient, describe, arrived, drawn }) {
    const log = $('chat-log');
    /** The SDK `Room` shown, and its folded message list. */
    let room;
    let stopListening = () => {};
    /** Each message shown, by offset: the folded message it was drawn from and its <li>. */
    const shown = new Map();
    /** The log epoch of the messages shown: offsets of another epoch name other messages. */
    let shownEpoch;
    /** Paging back: whether older messages exist, whether a page is loading. */
    const older = { more: false, loading: false };
    /** The message whose menu is open (offset), and the message being edited. */
    let menuFor;
    let editing;

    const me = () => getClient()?.user;
    const roomName = () => room?.name ?? '';

    /** Show `r` (an SDK Room, before its join, so that the join's history lands in its list). */
    function attach(r) {
      stopListening();
      room = r;
      const list = r.messages;
      stopListening = list.on('change', render);
      shown.clear();
      shownEpoch = undefined;
      menuFor = undefined;
      stopEditing();
      log.replaceChildren(loadOlderItem());
    }

    /** The join answered: older pages exist when its history does not start at offset 1. */
    function joined(answer) {
      older.more = (answer.history[0]?.offset ?? 0) > 1;
      renderLoadOlder();
    }

    function detach() {
      stopListening();
      stopListening = () => {};
      room = undefined;
      stopEditing();
    }

    // ---------------------------------------------------------------- rendering

    /**
     * Draw the list's messages: new ones appended (followed down when the reader is at the
     * bottom or wrote them), an older page inserted above without moving what the reader looks
     * at, changed ones (edited, deleted, reacted to) redrawn in place.
     */
    function render(items) {
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
      const fromBottom = log.scrollHeight - log.scrollTop;
      const epoch = items[0]?.epoch;
      if (epoch !== undefined && shownEpoch !== undefined && epoch !== shownEpoch) removeAll();
      if (epoch !== undefined) shownEpoch = epoch;
      const keep = new Set(items.map((message) => message.offset));
      for (const [offset, entry] of shown) {
        if (keep.has(offset)) continue;
        entry.item.remove();
        shown.delete(offset);
      }
      const newest = Math.max(0, ...shown.keys());
      let own = false;
      // New messages after the newest shown go at the end, after the page's lines.
      for (const message of items) {
        if (message.offset <= newest || shown.has(message.offset)) continue;
        const item = messageItem(message);
        shown.set(message.offset, { message, item });
        log.append(item);
        if (message.from === me()) own = true;
        arrived(message);
      }
      // The rest, newest first: redraw changed ones, insert older ones before the next one shown.
      let next;
      let insertedAbove = false;
      for (let at = items.length - 1; at >= 0; at -= 1) {
        const message = items[at];
        const have = shown.get(message.offset);
        if (have && have.message === message) {
          next = have.item;
          continue;
        }
        const item = messageItem(message);
        if (have) have.item.replaceWith(item);
        else {
          log.insertBefore(item, next ?? null);
          insertedAbove = true;
        }
        shown.set(message.offset, { message, item });
        next = item;
      }
      if (atBottom || own) log.scrollTop = log.scrollHeight;
      else if (insertedAbove) log.scrollTop = log.scrollHeight - fromBottom;
      drawn();
    }

    function removeAll() {
      for (const { item } of shown.values()) item.remove();
      shown.clear();
    }

    function messageItem(message) {
      const item = document.createElement('li');
      item.dataset.offset = String(message.offset);
      item.dataset.testid = 'message';
      const mine = message.from === me();
      if (mine) item.classList.add('mine');
      const from = document.createElement('span');
      from.className = 'from';
      from.textContent = message.from;
      const text = document.createElement('span');
      text.className = 'text';
      const time = document.createElement('span');
      time.className = 'time';
      time.textContent = new Date(message.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      if (message.deleted) {
        item.classList.add('deleted');
        text.textContent = 'message deleted';
        text.dataset.testid = 'tombstone';
        item.append(from, text, time);
        return item;
      }
      text.textContent = textOf(message.data);
      item.append(from, text);
      if (message.editedAt !== undefined) {
        const edited = document.createElement('span');
        edited.className = 'edited';
        edited.dataset.testid = 'edited';
        edited.textContent = '(edited)';
        edited.title = `edited ${new Date(message.editedAt).toLocaleString()}`;
        item.append(edited);
      }
      item.append(time, moreButton(message));
      if (message.reactions?.length) item.append(reactionChips(message));
      if (menuFor === message.offset) item.append(menu(message, mine));
      return item;
    }

    function textOf(data) {
      return typeof data === 'object' && data !== null && typeof data.text === 'string' ? data.text : JSON.stringify(data);
    }

    function moreButton(message) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'more';
      button.dataset.testid = 'message-actions';
      button.textContent = '⋯';
      button.setAttribute('aria-label', 'Message actions');
      button.setAttribute('aria-expanded', String(menuFor === message.offset));
      button.addEventListener('click', () => toggleMenu(message.offset));
      return button;
    }

    /** One chip per emoji with its count; yours are pressed, and a click adds or takes back yours. */
    function reactionChips(message) {
      const row = document.createElement('div');
      row.className = 'reactions';
      for (const reaction of message.reactions) {
        const chip = document.createElement('button');
        chip.type = 'button';
        chip.className = 'chip';
        chip.dataset.testid = 'reaction';
        chip.dataset.emoji = reaction.emoji;
        const yours = reaction.users.includes(me());
        chip.setAttribute('aria-pressed', String(yours));
        chip.title = reaction.users.join(', ');
        chip.textContent = `${reaction.emoji} ${reaction.count}`;
        chip.addEventListener('click', () => react(message, reaction.emoji, !yours));
        row.append(chip);
      }
      return row;
    }

    function menu(message, mine) {
      const box = document.createElement('div');
      box.className = 'message-menu';
      box.dataset.testid = 'message-menu';
      box.setAttribute('role', 'menu');
      for (const emoji of QUICK_REACTIONS) {
        const yours = message.reactions?.some((r) => r.emoji === emoji && r.users.includes(me())) ?? false;
        const button = menuButton(emoji, 'react', () => react(message, emoji, !yours));
        button.dataset.emoji = emoji;
        button.setAttribute('aria-pressed', String(yours));
        box.append(button);
      }
      if (mine) {
        box.append(
          menuButton('Edit', 'edit-message', () => startEditing(message)),
          menuButton('Delete', 'delete-message', () => remove(message)),
        );
      }
      return box;
    }

    function menuButton(label, testId, action) {
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.testid = testId;
      button.setAttribute('role', 'menuitem');
      button.textContent = label;
      button.addEventListener('click', () => {
        closeMenu();
        action();
      });
      return button;
    }

    function toggleMenu(offset) {
      const was = menuFor;
      menuFor = was === offset ? undefined : offset;
      for (const at of [was, menuFor]) redraw(at);
    }

    function closeMenu() {
      const was = menuFor;
      menuFor = undefined;
      redraw(was);
    }

    function redraw(offset) {
      const entry = offset === undefined ? undefined : shown.get(offset);
      if (!entry) return;
      const item = messageItem(entry.message);
      entry.item.replaceWith(item);
      entry.item = item;
      drawn();
    }

    document.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return;
      if (menuFor !== undefined) closeMenu();
      else if (editing) cancelEditing();
    });
    document.addEventListener('click', (event) => {
      if (menuFor !== undefined && !event.target.closest?.('.message-menu, .more')) closeMenu();
    });

    // ---------------------------------------------------------------- actions

    function react(message, emoji, on) {
      room?.react(message, emoji, on).catch((error) => systemLine(`Reaction not sent: ${describe(error, { action: 'send', room: roomName() })}`));
    }

    function remove(message) {
      room?.delete(message).catch((error) => systemLine(`Not deleted: ${describe(error, { action: 'edit', room: roomName() })}`));
    }

    /** Edit in the compose box (the way phones do it): the bar above says so, Escape or Cancel stops. */
    function startEditing(message) {
      editing = message;
      $('edit-bar').hidden = false;
      const input = $('chat-input');
      input.value = textOf(message.data);
      input.focus();
      $('chat-send').textContent = 'Save';
    }

    function stopEditing() {
      editing = undefined;
      $('edit-bar').hidden = true;
      $('chat-send').textContent = 'Send';
    }

    function cancelEditing() {
      stopEditing();
      $('chat-input').value = '';
    }

    $('cancel-edit').addEventListener('click', () => cancelEditing());

    $('chat-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = $('chat-input');
      const text = input.value.trim();
      const r = room;
      if (!text || !r) return;
      input.value = '';
      const target = editing;
      stopEditing();
      try {
        // Both show when the server echoes them, in the room's one order.
        if (target) {
          const data = typeof target.data === 'object' && target.data !== null ? { ...target.data, text } : { text };
          await r.edit(target, data);
        } else {
          await r.publish({ text });
        }
      } catch (error) {
        systemLine(`${target ? 'Not saved' : 'Not sent'}: ${describe(error, { action: target ? 'edit' : 'send', room: r.name })}`);
      }
    });

    // ---------------------------------------------------------------- older messages

    function loadOlderItem() {
      const item = document.createElement('li');
      item.className = 'system load-older';
      const button = document.createElement('button');
      button.id = 'load-older';
      button.className = 'small secondary';
      button.dataset.testid = 'load-older';
      button.textContent = 'Load older messages';
      button.addEventListener('click', () => void loadOlder());
      item.append(button);
      return item;
    }

    function renderLoadOlder() {
      const button = $('load-older');
      if (!button) return;
      button.hidden = !older.more;
      button.disabled = older.loading;
      button.textContent = older.loading ? 'Loading…' : 'Load older messages';
    }

    /** One older page into the list (the list folds it and `render` puts it above). */
    async function loadOlder() {
      const r = room;
      if (!r || older.loading || !older.more) return;
      older.loading = true;
      renderLoadOlder();
      try {
        const more = await r.messages.loadOlder(30);
        if (r === room) older.more = more;
      } catch (error) {
        older.more = false;
        systemLine(
          error?.code === 'epoch_mismatch'
            ? "The room's history was reset; older messages are gone."
            : `Could not load older messages: ${describe(error, { room: r.name })}`,
        );
      } finally {
        older.loading = false;
        renderLoadOlder();
      }
    }

    log.addEventListener('scroll', () => {
      if (log.scrollTop < 40) void loadOlder();
    });

    // ---------------------------------------------------------------- the page's lines

    function systemLine(text) {
      const item = document.createElement('li');
      item.className = 'system';
      item.textContent = text;
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
      log.append(item);
      if (atBottom) log.scrollTop = log.scrollHeight;
    }

    function scrollToNewest() {
      log.scrollTop = log.scrollHeight;
      drawn();
    }

    return { attach, joined, detach, systemLine, scrollToNewest };
  }

  window.NerveDemoChat = { create };
})();
