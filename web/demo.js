// nerve demo page: join a room, chat, see who is there, 1:1 video call.
// Plain browser JavaScript on top of the SDK bundle (/nerve-client.js → global `Nerve`).
// `window.nerveDemo` exposes the client and the current call for tests and curious people.
'use strict';

(() => {
  const { NerveClient, PeerCall, ErrorCode } = window.Nerve;
  const $ = (id) => document.getElementById(id);

  const params = new URLSearchParams(location.search);
  $('join-name').value = params.get('name') ?? localStorage.getItem('nerve-demo-name') ?? '';
  $('join-room').value = params.get('room') ?? 'lobby';

  /** @type {InstanceType<typeof NerveClient> | undefined} */
  let client;
  let room = '';
  /** @type {InstanceType<typeof PeerCall> | undefined} */
  let call;
  /** @type {MediaStream | undefined} */
  let localStream;
  /** An offer waiting for Accept/Decline, plus the signals that followed it. */
  let ringing;
  const members = new Map();
  const typing = new Map();

  const demo = {
    get client() {
      return client;
    },
    get call() {
      return call;
    },
    get pc() {
      return call?.pc;
    },
    get room() {
      return room;
    },
  };
  window.nerveDemo = demo;

  // ------------------------------------------------------------------ join / leave

  $('join-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = $('join-name').value.trim();
    room = $('join-room').value.trim();
    $('join-error').textContent = '';
    localStorage.setItem('nerve-demo-name', name);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    client = new NerveClient({ url: `${scheme}://${location.host}/ws`, user: name });
    wireClient(client);
    try {
      await client.connect();
      const joined = await client.join(room);
      members.clear();
      for (const member of joined.members) members.set(member.user, member);
      renderMembers();
      $('chat-log').replaceChildren();
      for (const message of joined.history) addMessage(message);
      systemLine(`You joined ${room}.`);
      $('room-title').textContent = `# ${room}`;
      $('join-view').hidden = true;
      $('room-view').hidden = false;
      $('chat-input').focus();
    } catch (error) {
      $('join-error').textContent = describe(error);
      await client.close();
      client = undefined;
    }
  });

  $('leave').addEventListener('click', async () => {
    endCall();
    const leaving = client;
    client = undefined;
    if (leaving) {
      await leaving.leave(room).catch(() => {});
      await leaving.close();
    }
    $('room-view').hidden = true;
    $('join-view').hidden = false;
    $('room-title').textContent = '';
    setBadge('closed');
  });

  function wireClient(c) {
    c.on('state', ({ to }) => setBadge(to));
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
      if (call && call.peer === user) endCall();
      if (ringing && ringing.offer.from === user) stopRinging();
    });
    c.on('rejoined', () => systemLine('Reconnected.'));
    c.on('recovery_failed', ({ joined }) => {
      $('chat-log').replaceChildren();
      for (const message of joined.history) addMessage(message);
      systemLine('Some messages could not be recovered; showing the latest.');
    });
    c.on('signal', onSignal);
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
        button.disabled = Boolean(call && !call.ended);
        button.addEventListener('click', () => void startCall(user));
        item.append(button);
      }
      list.append(item);
    }
  }

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
      systemLine(`Not sent: ${describe(error)}`);
    }
  });

  let lastTypingSent = 0;
  $('chat-input').addEventListener('input', () => {
    const now = Date.now();
    if (!client || now - lastTypingSent < 2000) return;
    lastTypingSent = now;
    void client.publish(room, true, { class: 'ephemeral', key: 'typing' });
  });

  function addMessage(message) {
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
    appendToLog(item);
    hideTyping(message.from);
  }

  function systemLine(text) {
    const item = document.createElement('li');
    item.className = 'system';
    item.textContent = text;
    appendToLog(item);
  }

  function appendToLog(item) {
    const log = $('chat-log');
    log.append(item);
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

  // ------------------------------------------------------------------ calls

  async function startCall(peer) {
    if (!client || (call && !call.ended)) return;
    try {
      const stream = await getLocalStream();
      call = createCall(peer);
      call.start(stream);
    } catch (error) {
      systemLine(`Could not start the call: ${describe(error)}`);
      endCall();
    }
  }

  function onSignal(signal) {
    // Signals of the current call are handled by the PeerCall itself.
    if (call && !call.ended && call.peer === signal.from) return;
    if (ringing && ringing.offer.from === signal.from) {
      if (signal.kind === 'bye') stopRinging();
      else ringing.later.push(signal);
      return;
    }
    if (signal.kind !== 'offer') return;
    if (ringing || (call && !call.ended)) {
      // Busy: one call at a time in this demo.
      void client.signal(signal.from, 'bye', { toConn: signal.fromConn }).catch(() => {});
      return;
    }
    ringing = { offer: signal, later: [] };
    $('incoming-from').textContent = signal.from;
    $('incoming').hidden = false;
  }

  $('accept-call').addEventListener('click', async () => {
    const pending = ringing;
    stopRinging();
    if (!pending || !client) return;
    try {
      const stream = await getLocalStream();
      call = createCall(pending.offer.from);
      const answering = call.answer(pending.offer, stream);
      for (const signal of pending.later) call.receive(signal);
      await answering;
    } catch (error) {
      systemLine(`Could not answer: ${describe(error)}`);
      endCall();
    }
  });

  $('decline-call').addEventListener('click', () => {
    const pending = ringing;
    stopRinging();
    if (pending && client) {
      void client.signal(pending.offer.from, 'bye', { toConn: pending.offer.fromConn }).catch(() => {});
    }
  });

  function stopRinging() {
    ringing = undefined;
    $('incoming').hidden = true;
  }

  function createCall(peer) {
    const created = new PeerCall({ client, peer });
    $('call-peer').textContent = peer;
    $('remote-label').textContent = peer;
    setCallState('connecting');
    $('call-panel').hidden = false;
    queueMicrotask(renderMembers);
    created.on('track', () => {
      $('remote-video').srcObject = created.remoteStream ?? null;
    });
    created.on('state', (state) => setCallState(state));
    created.on('error', (error) => systemLine(`Call: ${describe(error)}`));
    created.on('ended', ({ reason }) => {
      const why = { local: 'You hung up.', remote: `${peer} hung up.`, peer_offline: `${peer} is offline.`, failed: 'The call failed.' };
      systemLine(why[reason] ?? 'Call ended.');
      if (call === created) endCall();
    });
    return created;
  }

  $('hangup').addEventListener('click', () => {
    call?.hangup();
    endCall();
  });

  function endCall() {
    if (call && !call.ended) call.hangup();
    for (const track of localStream?.getTracks() ?? []) track.stop();
    localStream = undefined;
    $('local-video').srcObject = null;
    $('remote-video').srcObject = null;
    $('call-panel').hidden = true;
    renderMembers();
  }

  function setCallState(state) {
    const badge = $('call-state');
    badge.dataset.state = state;
    badge.textContent = state;
  }

  async function getLocalStream() {
    if (!localStream) {
      localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      $('local-video').srcObject = localStream;
    }
    return localStream;
  }

  function describe(error) {
    if (error && typeof error === 'object' && 'code' in error) {
      if (error.code === ErrorCode.PeerOffline) return 'that person is offline';
      if (error.code === ErrorCode.AuthFailed) return 'that name was refused';
      return `${error.message} (${error.code})`;
    }
    return error instanceof Error ? error.message : String(error);
  }
})();
