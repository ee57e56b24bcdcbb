// The browser build of npm scuttlebutt: window.scuttlebutt.Model and
// window.scuttlebutt.ReliableEventEmitter. build.sh bundles it.
window.scuttlebutt = {
  Model: require('scuttlebutt/model'),
  ReliableEventEmitter: require('scuttlebutt/events')
}
