// PM2 equivalent of server.mjs: PM2's cluster mode is node:cluster, with PM2 as the primary
// (it restarts a dead instance, like server.mjs).
// Each instance gets NODE_APP_INSTANCE = 0..instances-1 (stable across restarts), which gives it
// its own cluster port and place in the static member list.
//   pm2 start examples/node-cluster/ecosystem.config.cjs
const INSTANCES = 3;
const CLUSTER_BASE_PORT = 4100;

module.exports = {
  apps: [
    {
      name: 'clowder-sessions',
      script: './worker.mjs',
      cwd: __dirname,
      exec_mode: 'cluster',
      instances: INSTANCES,
      // A restarted instance keeps its NODE_APP_INSTANCE, so it rebinds its listed port.
      instance_var: 'NODE_APP_INSTANCE',
      kill_timeout: 15_000, // let a stopping instance finish requests and leave the cluster
      wait_ready: true, // online once worker.mjs sent 'ready': it holds the sessions and listens
      listen_timeout: 120_000, // a state transfer may take a while with many sessions
      env: {
        PORT: '3000',
        WORKERS: String(INSTANCES),
        CLUSTER_BASE_PORT: String(CLUSTER_BASE_PORT),
      },
    },
  ],
};
