import { useEffect, useLayoutEffect, useRef, useState, type FormEvent } from 'react';
import { useNerve, useRoom } from '@nerve-rt/react';

/** What this app publishes. The type is its word: another client may send anything, so `textOf` checks. */
interface ChatPayload {
  text: string;
}

function textOf(data: unknown): string {
  const text = (data as Partial<ChatPayload> | null)?.text;
  return typeof text === 'string' ? text : JSON.stringify(data);
}

export function Chat({ room }: { room: string }) {
  // messages: the SDK's folded list (edits, deletes, reactions applied); room.edit / delete / react change it.
  const { user } = useNerve();
  const { messages, publish, hasOlder, loadingOlder, loadOlder, status, error, unread, readPositions, markRead } = useRoom<ChatPayload>(room, {
    history: 20,
    pageSize: 20,
  });
  const [text, setText] = useState('');
  const [sendError, setSendError] = useState<string>();
  const log = useRef<HTMLOListElement>(null);
  const seen = useRef({ first: 0, last: 0, height: 0 });
  // Whether the newest message is in view: only then does it count as read, and new ones scroll in.
  const [atBottom, setAtBottom] = useState(true);
  const atBottomNow = useRef(true);
  const [visible, setVisible] = useState(() => document.visibilityState === 'visible');
  const marking = useRef(false);

  // A new newest message scrolls to the bottom if the bottom was in view (or it is ours); an older page keeps the view where it was.
  useLayoutEffect(() => {
    const element = log.current;
    if (!element) return;
    const first = messages[0]?.offset ?? 0;
    const last = messages[messages.length - 1]?.offset ?? 0;
    if (last !== seen.current.last) {
      if (atBottomNow.current || seen.current.last === 0 || messages[messages.length - 1]?.from === user) element.scrollTop = element.scrollHeight;
    } else if (first !== seen.current.first) element.scrollTop += element.scrollHeight - seen.current.height;
    seen.current = { first, last, height: element.scrollHeight };
  }, [messages, user]);

  useEffect(() => {
    const onChange = () => setVisible(document.visibilityState === 'visible');
    document.addEventListener('visibilitychange', onChange);
    return () => document.removeEventListener('visibilitychange', onChange);
  }, []);

  // Read receipts: what is in view on a visible page is read. At most one markRead per 300 ms (the server allows 5 a second).
  useEffect(() => {
    if (status !== 'joined' || !atBottom || !visible || unread === 0 || marking.current) return;
    marking.current = true;
    setTimeout(() => {
      marking.current = false;
      // No offset: up to the newest message loaded, those that came during the wait included.
      markRead().catch(() => {});
    }, 300);
  }, [status, atBottom, visible, unread, markRead]);

  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) #${room}` : `#${room}`;
  }, [unread, room]);

  const onScroll = () => {
    const element = log.current;
    if (!element) return;
    atBottomNow.current = element.scrollHeight - element.scrollTop - element.clientHeight < 8;
    setAtBottom(atBottomNow.current);
  };
  const toNewest = () => {
    log.current?.scrollTo({ top: log.current.scrollHeight });
  };

  // "Seen by" under our newest message: the others whose read position reached it.
  const ours = [...messages].reverse().find((message) => message.from === user && !message.deleted);
  const seenBy = ours ? [...readPositions].filter(([reader, offset]) => reader !== user && offset >= ours.offset).map(([reader]) => reader) : [];

  const send = (event: FormEvent) => {
    event.preventDefault();
    if (!text.trim()) return;
    setText('');
    setSendError(undefined);
    publish({ text }).catch((failure: Error) => setSendError(failure.message));
  };

  return (
    <section className="chat">
      {status === 'joining' && <p className="note">Joining…</p>}
      {error && <p className="error">{error.message}</p>}
      <ol className="log" ref={log} data-testid="chat-log" data-at-bottom={atBottom} onScroll={onScroll}>
        {hasOlder && (
          <li className="older">
            <button data-testid="load-older" disabled={loadingOlder} onClick={() => void loadOlder()}>
              {loadingOlder ? 'Loading…' : 'Load older messages'}
            </button>
          </li>
        )}
        {messages.map((message) => (
          <li key={`${message.epoch}:${message.offset}`} data-offset={message.offset}>
            <b>{message.from}</b> {message.deleted ? <i>message deleted</i> : textOf(message.data)}
            {message.editedAt !== undefined && !message.deleted && <small> (edited)</small>}
            {message.reactions?.map((reaction) => (
              <span key={reaction.emoji} className="reaction" title={reaction.users.join(', ')}>
                {reaction.emoji} {reaction.count}
              </span>
            ))}
            {message === ours && seenBy.length > 0 && (
              <small className="seen" data-testid="seen-by">
                Seen by {seenBy.join(', ')}
              </small>
            )}
          </li>
        ))}
      </ol>
      {unread > 0 && !atBottom && (
        <button className="unread" data-testid="unread-badge" onClick={toNewest}>
          {unread} new ↓
        </button>
      )}
      {sendError && <p className="error">Not sent: {sendError}</p>}
      <form className="composer" onSubmit={send}>
        <input data-testid="chat-input" value={text} onChange={(event) => setText(event.target.value)} placeholder="Say something" />
        <button data-testid="chat-send">Send</button>
      </form>
    </section>
  );
}
