// nerve demo page: join a room, chat, see who is there, video calls.
// Plain browser JavaScript on top of the SDK bundle (/nerve-client.js → global `Nerve`);
// the call panel is demo-call.js, the error sentences demo-errors.js.
// `window.nerveDemo` exposes the client and the current call for tests and curious people.
'use strict';

(() => {
  const { NerveClient } = window.Nerve;
  const { describe, describeClose } = window.nerveDemoErrors;
  const $ = (id) => document.getElementById(id);

  const params = new URLSearchParams(location.search);
  $('join-name').value = params.get('name') ?? localStorage.getItem('nerve-demo-name') ?? '';
  $('join-room').value = params.get('room') ?? 'lobby';
  $('join-token').value = params.get('token') ?? '';
  $('room-token').value = params.get('joinToken') ?? '';
  if ($('join-token').value || $('room-token').value) $('auth').open = true;

  /** @type {InstanceType<typeof NerveClient> | undefined} */
  let client;
  let room = '';
  const members = new Map();
  const typing = new Map();
  /** Paging back through the room's chat: the oldest offset shown, its epoch, whether older messages exist. */
  const older = { offset: 0, epoch: '', more: false, loading: false };
  const calls = window.NerveDemoCall.create({
    getClient: () => client,
    getRoom: () => room,
    systemLine,
    describe,
    changed: () => renderMembers(),
  });

  const demo = {
    get client() {
      return client;
    },
    get call() {
      return calls.call;
    },
    get pc() {
      return calls.call?.pc;
    },
    /** The group call (a RoomCall), if one is on. */
    get group() {
      return calls.group;
    },
    get room() {
      return room;
    },
  };
  window.nerveDemo = demo;

  // ------------------------------------------------------------------ join / leave

  // With a sign-in token the server takes the user from the token: the name is not needed.
  const nameRequired = () => ($('join-name').required = $('join-token').value.trim() === '');
  $('join-token').addEventListener('input', nameRequired);
  nameRequired();

  $('join-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = $('join-name').value.trim();
    const token = $('join-token').value.trim();
    const joinToken = $('room-token').value.trim();
    room = $('join-room').value.trim();
    $('join-error').textContent = '';
    if (name) localStorage.setItem('nerve-demo-name', name);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const options = { url: `${scheme}://${location.host}/ws` };
    if (name) options.user = name;
    if (token) options.token = token;
    const joining = new NerveClient(options);
    client = joining;
    joining.on('state', ({ to }) => setBadge(to));
    let action = 'connect';
    try {
      await connectOrRefuse(joining);
      wireClient(joining);
      action = 'join';
      const joined = await joining.join(room, joinToken ? { token: joinToken } : {});
      members.clear();
      for (const member of joined.members) members.set(member.user, member);
      showHistory(joined);
      systemLine(`You joined ${room}${joining.user && joining.user !== name ? ` as ${joining.user}` : ''}.`);
      $('room-title').textContent = `# ${room}`;
      $('join-view').hidden = true;
      $('room-view').hidden = false;
      renderMembers();
      // The log had no size while hidden: open it at the newest message now.
      scrollToNewest();
      $('chat-input').focus({ preventScroll: true });
    } catch (error) {
      $('join-error').textContent = describe(error, { action, room, token: token !== '', joinToken: joinToken !== '' });
      client = undefined;
      await joining.close();
    }
  });

  /**
   * `connect()` retries a refused handshake with backoff (the refusal may be
   * passing); a person wants to hear about it at once. The refusals that close
   * the client (auth_failed, unsupported_version) reject `connect()` by themselves.
   */
  function connectOrRefuse(c) {
    let off = () => {};
    const refused = new Promise((_, reject) => {
      off = c.on('error', (error) => {
        if (error.code === 'too_many_connections' || error.code === 'quota_exceeded') reject(error);
      });
    });
    return Promise.race([c.connect(), refused]).finally(off);
  }

  $('leave').addEventListener('click', () => void leave());

  async function leave(reason) {
    calls.end();
    const leaving = client;
    client = undefined;
    if (leaving) {
      await leaving.leave(room).catch(() => {});
      await leaving.close();
    }
    $('room-view').hidden = true;
    $('join-view').hidden = false;
    $('room-title').textContent = '';
    $('join-error').textContent = reason ?? '';
    setBadge('closed');
  }

  function wireClient(c) {
    c.on('disconnected', ({ code, willReconnect }) => {
      if (c !== client) return;
      const text = describeClose(code);
      if (!willReconnect && text) void leave(text);
      else if (text) systemLine(text);
    });
    c.on('message', (message) => {
      if (message.room !== room) return;
      if (message.class === 'chat') addMessage(message);
      else if (message.key === 'typing') showTyping(message.from);
    });
    c.on('member_joined', ({ room: r, user }) => {
      if (r !== room) return;
      members.set(user, { user, since: Date.now() });
      renderMembers();
      systemLine(`${user} joined.`);
    });
    c.on('member_left', ({ room: r, user }) => {
      if (r !== room) return;
      members.delete(user);
      renderMembers();
      systemLine(`${user} left.`);
      calls.memberLeft(user);
    });
    c.on('rejoined', () => systemLine('Reconnected.'));
    c.on('recovery_failed', ({ joined }) => {
      showHistory(joined);
      systemLine('Some messages could not be recovered; showing the latest.');
      scrollToNewest();
    });
    c.on('room_ended', ({ room: r }) => {
      if (r === room) void leave(`The room “${r}” was ended by the server.`);
    });
    c.on('signal', (signal) => calls.onSignal(signal));
  }

  function setBadge(state) {
    const badge = $('state');
    badge.dataset.state = state;
    badge.textContent = state === 'closed' ? 'offline' : state;
  }

  function renderMembers() {
    const list = $('members');
    list.replaceChildren();
    const me = client?.user;
    for (const user of [...members.keys()].sort()) {
      const item = document.createElement('li');
      item.dataset.testid = `member-${user}`;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = user;
      item.append(who);
      if (user === me) {
        const you = document.createElement('span');
        you.className = 'you';
        you.textContent = 'you';
        item.append(you);
      } else {
        const button = document.createElement('button');
        button.className = 'small';
        button.textContent = 'Call';
        button.dataset.testid = `call-${user}`;
        button.disabled = calls.busy;
        button.addEventListener('click', () => void calls.start(user));
        item.append(button);
      }
      list.append(item);
    }
    // A group call invites everyone else in the room (up to 5 of them).
    const others = [...members.keys()].filter((user) => user !== me).sort();
    const group = $('group-call');
    group.hidden = others.length < 2;
    group.disabled = calls.busy;
  }

  $('group-call').addEventListener('click', () => {
    const me = client?.user;
    void calls.startGroup([...members.keys()].filter((user) => user !== me).sort());
  });

  // ------------------------------------------------------------------ chat

  $('chat-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('chat-input');
    const text = input.value.trim();
    if (!text || !client) return;
    input.value = '';
    try {
      // The message appears when the server echoes it, in the room's one order.
      await client.publish(room, { text });
    } catch (error) {
      systemLine(`Not sent: ${describe(error, { action: 'send', room })}`);
    }
  });

  let lastTypingSent = 0;
  $('chat-input').addEventListener('input', () => {
    const now = Date.now();
    if (!client || now - lastTypingSent < 2000) return;
    lastTypingSent = now;
    void client.publish(room, true, { class: 'ephemeral', key: 'typing' }).catch(() => {});
  });

  // ------------------------------------------------------------------ older messages

  /** Fill the log with a join's recent history; older pages load on scrolling to the top. */
  function showHistory(joined) {
    const log = $('chat-log');
    log.replaceChildren(loadOlderItem());
    for (const message of joined.history) addMessage(message);
    older.offset = joined.history[0]?.offset ?? 0;
    older.epoch = joined.position.epoch;
    // Offsets start at 1: anything above it has something before it.
    older.more = older.offset > 1;
    renderLoadOlder();
  }

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

  async function loadOlder() {
    const c = client;
    if (!c || older.loading || !older.more) return;
    older.loading = true;
    renderLoadOlder();
    try {
      const page = await c.history(room, { before: older.offset, limit: 30, epoch: older.epoch });
      if (c !== client) return;
      const log = $('chat-log');
      // Keep what the reader looks at in place: the page goes above it.
      const fromBottom = log.scrollHeight - log.scrollTop;
      const first = log.querySelector('li:not(.load-older)');
      for (const message of page.messages) log.insertBefore(messageItem(message), first);
      log.scrollTop = log.scrollHeight - fromBottom;
      if (page.messages.length > 0) older.offset = page.messages[0].offset;
      older.more = page.more && page.messages.length > 0;
    } catch (error) {
      older.more = false;
      systemLine(
        error?.code === 'epoch_mismatch'
          ? "The room's history was reset; older messages are gone."
          : `Could not load older messages: ${describe(error, { room })}`,
      );
    } finally {
      older.loading = false;
      renderLoadOlder();
    }
  }

  $('chat-log').addEventListener('scroll', () => {
    if ($('chat-log').scrollTop < 40) void loadOlder();
  });

  function messageItem(message) {
    const item = document.createElement('li');
    item.dataset.offset = String(message.offset);
    if (message.from === client?.user) item.classList.add('mine');
    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = message.from;
    const text = document.createElement('span');
    text.className = 'text';
    const data = message.data;
    text.textContent = typeof data === 'object' && data !== null && typeof data.text === 'string' ? data.text : JSON.stringify(data);
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = new Date(message.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    item.append(from, text, time);
    return item;
  }

  function addMessage(message) {
    appendToLog(messageItem(message), message.from === client?.user);
    hideTyping(message.from);
  }

  function systemLine(text) {
    const item = document.createElement('li');
    item.className = 'system';
    item.textContent = text;
    appendToLog(item, false);
  }

  /** Follow new lines only when the reader is at the bottom (or wrote the line): never yank them away from older ones. */
  function appendToLog(item, own) {
    const log = $('chat-log');
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    log.append(item);
    if (atBottom || own) log.scrollTop = log.scrollHeight;
  }

  function scrollToNewest() {
    const log = $('chat-log');
    log.scrollTop = log.scrollHeight;
  }

  function showTyping(user) {
    clearTimeout(typing.get(user));
    typing.set(
      user,
      setTimeout(() => hideTyping(user), 3000),
    );
    renderTyping();
  }

  function hideTyping(user) {
    clearTimeout(typing.get(user));
    typing.delete(user);
    renderTyping();
  }

  function renderTyping() {
    const users = [...typing.keys()];
    $('typing').textContent = users.length === 0 ? '' : `${users.join(', ')} ${users.length === 1 ? 'is' : 'are'} typing…`;
  }
})();
