// Loaded between require.js and the Jupyter widgets HTML manager, on pages that hold
// widgets. Two adjustments, so interactive figures work offline:
// 1. The manager finds its own files (web fonts) in this site's
//    _static/vendor/html-manager/ rather than relative to the page or on a CDN: every
//    @jupyter-widgets module computes where its fonts are from its own module id.
// 2. The manager typesets widget labels with MathJax 2's `MathJax.Hub.Queue`; the site
//    runs MathJax 3, which has no Hub, so a page with both formulas and widgets would
//    throw. A small Hub forwards to MathJax 3's typesetPromise.
(function () {
  var root = document.documentElement.dataset.content_root || "./";
  var base = new URL(root + "_static/vendor/html-manager", document.baseURI).href;
  window.requirejs.config({ paths: { "@jupyter-widgets/html-manager/dist": base, "@jupyter-widgets": base } });

  function addHub() {
    var mj = window.MathJax;
    if (!mj || mj.Hub) return;
    mj.Hub = {
      Queue: function () {
        Array.prototype.forEach.call(arguments, function (job) {
          if (Array.isArray(job) && job[0] === "Typeset" && job[2] && mj.typesetPromise) {
            mj.typesetPromise([job[2]]).catch(function () {});
          }
        });
      },
    };
  }
  // After the deferred MathJax has loaded (a Hub in its configuration object would read
  // as a MathJax 2 configuration), before the manager renders its widgets.
  document.addEventListener("DOMContentLoaded", addHub);
})();
