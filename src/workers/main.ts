#!/usr/bin/env node
/**
 * Stand-alone worker entry (`node dist/src/workers/main.js <name> [flags]`),
 * the same as `nerve worker <name> [flags]`; the crash test spawns it.
 */
import { workerMain } from './cli.js';

process.exitCode = await workerMain(process.argv.slice(2), process.env);
