/** Public surface of the cold-lane workers. */
export { runWorker, checkWorkerOptions, WORKERS, type WorkerHandle, type WorkerOptions } from './runner.js';
export { workerMain, parseWorkerCommand, workerHelp } from './cli.js';
export { readStoredMessages, InvalidCursorError, type StoredMessage, type StoredMessagePage } from './chat-store.js';
export { applyMigrations } from './db.js';
export { signatureHeader, verifySignature, SIGNATURE_HEADER } from './http.js';
export { webhookQueue } from './webhooks.js';
export { WORKER_NAMES, type WorkerName, type TestHooks } from './worker.js';
