import { useState, type FormEvent } from 'react';
import { NerveProvider, useNerve } from '@nerve-rt/react';
import { CallPanel } from './CallPanel';
import { Chat } from './Chat';
import { Members } from './Members';

/** The nerve node: VITE_NERVE_URL at build time, else this page's own host (the dev server forwards /ws). */
const SERVER_URL: string = (import.meta.env.VITE_NERVE_URL as string | undefined) || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

interface Session {
  user: string;
  room: string;
}

export function App() {
  const [session, setSession] = useState<Session>();
  if (!session) return <JoinForm onJoin={setSession} />;
  // A development node takes the user name as the identity; with JWT auth, pass getToken instead of user.
  return (
    <NerveProvider key={session.user} options={{ url: SERVER_URL, user: session.user }}>
      <RoomView room={session.room} onSwitch={(room) => setSession({ ...session, room })} onLeave={() => setSession(undefined)} />
    </NerveProvider>
  );
}

function JoinForm({ onJoin }: { onJoin: (session: Session) => void }) {
  const [user, setUser] = useState('');
  const [room, setRoom] = useState('lobby');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (user.trim() && room.trim()) onJoin({ user: user.trim(), room: room.trim() });
  };
  return (
    <form className="join" onSubmit={submit}>
      <h1>nerve chat</h1>
      <label>
        Your name <input data-testid="join-name" value={user} onChange={(event) => setUser(event.target.value)} autoFocus required />
      </label>
      <label>
        Room <input data-testid="join-room" value={room} onChange={(event) => setRoom(event.target.value)} required />
      </label>
      <button data-testid="join-submit">Join</button>
    </form>
  );
}

/** Another room on the same connection: the hooks leave the old room and join the new one when their `room` prop changes. */
function RoomSwitch({ onSwitch }: { onSwitch: (room: string) => void }) {
  const [next, setNext] = useState('');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (next.trim()) onSwitch(next.trim());
    setNext('');
  };
  return (
    <form className="switch" onSubmit={submit}>
      <input data-testid="switch-room" value={next} onChange={(event) => setNext(event.target.value)} placeholder="Go to room" aria-label="Go to room" />
    </form>
  );
}

function RoomView({ room, onSwitch, onLeave }: { room: string; onSwitch: (room: string) => void; onLeave: () => void }) {
  const { client, state, user, error } = useNerve();
  return (
    <main className="room">
      <header>
        <h1>#{room}</h1>
        <span className={`state state-${state}`} data-testid="connection-state">
          {state}
        </span>
        <span>{user}</span>
        <RoomSwitch onSwitch={onSwitch} />
        <button data-testid="leave" onClick={onLeave}>
          Leave
        </button>
      </header>
      {state === 'closed' || state === 'connecting' ? (
        // Until the first welcome (the provider connects from an effect), and after a terminal close.
        <p className={error ? 'error' : 'note'}>
          {error ? `Disconnected: ${error.message} ` : 'Connecting…'}
          {error && <button onClick={() => void client.connect().catch(() => {})}>Reconnect</button>}
        </p>
      ) : (
        <>
          <CallPanel room={room} />
          <div className="columns">
            <Chat room={room} />
            <Members room={room} />
          </div>
        </>
      )}
    </main>
  );
}
