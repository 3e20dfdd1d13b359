// Loaded between require.js and the Jupyter widgets HTML manager: makes the manager
// find its own files (web fonts) in this site's _static/vendor/html-manager/ rather
// than relative to the page or on a CDN, so interactive figures work offline.
(function () {
  var root = document.documentElement.dataset.content_root || "./";
  var base = new URL(root + "_static/vendor/html-manager", document.baseURI).href;
  // Every @jupyter-widgets module computes where its fonts are from its own module id.
  window.requirejs.config({ paths: { "@jupyter-widgets/html-manager/dist": base, "@jupyter-widgets": base } });
})();
