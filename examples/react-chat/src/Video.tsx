import { useEffect, useRef } from 'react';

/** A <video> showing `stream` (React has no srcObject prop, so an effect sets it). */
export function Video({ stream, muted = false, testId }: { stream: MediaStream | undefined; muted?: boolean; testId: string }) {
  const video = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (video.current) video.current.srcObject = stream ?? null;
  }, [stream]);
  return <video ref={video} autoPlay playsInline muted={muted} data-testid={testId} />;
}
