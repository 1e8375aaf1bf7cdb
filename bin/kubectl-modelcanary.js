#!/usr/bin/env node
// The kubectl plugin: kubectl finds `kubectl-modelcanary` on PATH and runs
// `kubectl modelcanary status NAME` as `kubectl-modelcanary status NAME`, the same commands.
import './modelcanary.js';
