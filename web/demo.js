// nerve demo page: join a room, chat, see who is there and what they are up to, video calls.
// Plain browser JavaScript on top of the SDK bundle (/nerve-client.js → global `Nerve`);
// the chat log is demo-chat.js, read receipts demo-reads.js, the call panel demo-call.js, the error
// sentences demo-errors.js.
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
  /** The SDK's Room for `room`: its folded messages and its members with their presence state. */
  let roomHandle;
  /** Whether the others see this page "in a call" (its presence status). */
  let inCall = false;
  const typing = new Map();
  const reads = window.NerveDemoReads.create({ getClient: () => client });
  const chat = window.NerveDemoChat.create({
    getClient: () => client,
    describe,
    arrived: (message) => hideTyping(message.from),
    drawn: () => reads.refresh(),
  });
  const systemLine = (text) => chat.systemLine(text);
  const calls = window.NerveDemoCall.create({
    getClient: () => client,
    getRoom: () => room,
    systemLine,
    describe,
    changed: () => {
      renderMembers();
      void showCallStatus();
    },
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
    /** The SDK Room: `messages` (folded), `members`. */
    get roomHandle() {
      return roomHandle;
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
      // The Room before its join: its message list then holds the join's history, folded.
      const handle = joining.room(room);
      roomHandle = handle;
      // The list listens first: it is reset by a failed recovery before the page's handler runs.
      chat.attach(handle);
      reads.attach(handle);
      wireRoom(handle);
      inCall = false;
      const joined = await handle.join(joinToken ? { token: joinToken } : {});
      chat.joined(joined);
      systemLine(`You joined ${room}${joining.user && joining.user !== name ? ` as ${joining.user}` : ''}.`);
      $('room-title').textContent = `# ${room}`;
      $('join-view').hidden = true;
      $('room-view').hidden = false;
      renderMembers();
      // The log had no size while hidden: open it at the newest message now.
      chat.scrollToNewest();
      $('chat-input').focus({ preventScroll: true });
    } catch (error) {
      $('join-error').textContent = describe(error, { action, room, token: token !== '', joinToken: joinToken !== '' });
      client = undefined;
      roomHandle = undefined;
      chat.detach();
      reads.detach();
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
    roomHandle = undefined;
    chat.detach();
    reads.detach();
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
    c.on('rejoined', () => systemLine('Reconnected.'));
    c.on('signal', (signal) => calls.onSignal(signal));
  }

  /** The room's events. Chat is drawn from the room's folded message list (demo-chat.js); the member map is the SDK's, already updated when these fire. */
  function wireRoom(r) {
    r.on('message', (message) => {
      if (message.class === 'ephemeral' && message.key === 'typing') showTyping(message.from);
    });
    // Every change of the member map or count (joins, leaves, states, large-room counts, your own setPresence).
    r.members.on('change', () => renderMembers());
    r.on('member_joined', ({ user }) => {
      systemLine(`${displayName(user)} joined.`);
    });
    r.on('member_left', ({ user }) => {
      systemLine(`${user} left.`);
      calls.memberLeft(user);
    });
    r.on('recovery_failed', ({ joined }) => {
      chat.joined(joined);
      systemLine('Some messages could not be recovered; showing the latest.');
      chat.scrollToNewest();
    });
    r.on('room_ended', () => void leave(`The room “${r.name}” was ended by the server.`));
  }

  function setBadge(state) {
    const badge = $('state');
    badge.dataset.state = state;
    badge.textContent = state === 'closed' ? 'offline' : state;
  }

  /** A member's name as their presence state gives it (a token's `presence` claim, or what they set), else their user id. */
  function displayName(user) {
    const name = roomHandle?.members.state(user)?.name;
    return typeof name === 'string' && name.trim() !== '' ? name : user;
  }

  function renderMembers() {
    const list = $('members');
    list.replaceChildren();
    const me = client?.user;
    const members = roomHandle?.members;
    const users = members ? [...members.map.keys()].sort() : [];
    for (const user of users) {
      const item = document.createElement('li');
      item.dataset.testid = `member-${user}`;
      const who = document.createElement('span');
      who.className = 'who';
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = displayName(user);
      name.title = user;
      who.append(name);
      const status = members.state(user)?.status;
      if (typeof status === 'string' && status !== '') {
        const line = document.createElement('span');
        line.className = 'status';
        line.dataset.testid = `status-${user}`;
        line.textContent = status;
        who.append(line);
        if (status === 'in a call') item.classList.add('busy');
      }
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
    // A large room lists only some members (docs/protocol.md, "Large rooms"): say how many more.
    const count = members?.count ?? 0;
    if (count > users.length) {
      const more = document.createElement('li');
      more.className = 'more-members';
      more.dataset.testid = 'members-more';
      more.textContent = `and ${count - users.length} more`;
      list.append(more);
    }
    $('member-count').textContent = count > 0 ? String(count) : '';
    // A group call invites everyone else in the room (up to 5 of them).
    const others = users.filter((user) => user !== me);
    const group = $('group-call');
    group.hidden = others.length < 2;
    group.disabled = calls.busy;
  }

  $('group-call').addEventListener('click', () => {
    const me = client?.user;
    void calls.startGroup([...(roomHandle?.members.map.keys() ?? [])].filter((user) => user !== me).sort());
  });

  /** Tell the room when a call starts and ends: the presence status "in a call" (the SDK sends it again on every rejoin). */
  async function showCallStatus() {
    const r = roomHandle;
    const now = calls.inCall;
    if (!r || now === inCall) return;
    inCall = now;
    try {
      await r.setPresence(now ? { status: 'in a call' } : {});
    } catch (error) {
      systemLine(`Could not update your status: ${describe(error, { room: r.name })}`);
    }
  }

  // ------------------------------------------------------------------ typing

  let lastTypingSent = 0;
  $('chat-input').addEventListener('input', () => {
    const now = Date.now();
    if (!client || now - lastTypingSent < 2000) return;
    lastTypingSent = now;
    void client.publish(room, true, { class: 'ephemeral', key: 'typing' }).catch(() => {});
  });

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
