// {{name}}: the component entry. `npm run build` bundles it with the SDK and builds the
// component against the SDK's world (the `pipeline-worker` contract plus wasi:filesystem).
import { exportWorker } from '@alephauto/guest/component';
import definition from './worker.js';

export const worker = exportWorker(definition);
