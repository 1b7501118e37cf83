// The changelog component: exports the worker defined in worker.js (built by alephauto-guest-build).
import { exportWorker } from '@alephauto/guest/component';
import definition from './worker.js';

export const worker = exportWorker(definition);
