"""Small fixes to what the book's theme and extensions write into each page.

- sphinx-thebe adds its inline configuration script once per read of the sources, and
  jupyter-book can read them twice in one build, so a page declared ``THEBE_JS_URL``
  twice ("Identifier has already been declared" in the console). Each page keeps one
  copy of every script.
- MathJax and the Jupyter widgets manager are served from the site itself
  (``_assets/vendor``, published as ``_static/vendor``; see
  ``scripts/vendor_web_assets.sh``) rather than from CDNs, so formulas and interactive
  figures work offline. They live outside ``_static`` because jupyter-book adds every
  script found there to every page.
- The download menu offers the executed notebook (with every output the page shows)
  beside the source notebook, which is committed without outputs. Executed notebooks
  are taken from the execution cache and published under ``_executed/``.
- sphinx-exercise gives every exercise's and solution's body the same id
  (``exercise-content``, ``solution-content``); a page with several questions then has
  duplicate ids. They become classes, with unique ids.
- A completed workbook (``solutions/``) has the student version's title, since nbgrader
  copies everything outside its marked regions unchanged; a note under the title says
  which version the page is and links the other.
"""
from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx import addnodes

SHARED_IDS = ("exercise-content", "solution-content")


def tidy_page_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # An inline script's filename is None or "" depending on who added it.
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def unique_exercise_ids(app, doctree, docname):
    counts: dict[str, int] = {}
    for section in doctree.findall(nodes.section):
        for shared in SHARED_IDS:
            if shared in section["ids"]:
                counts[shared] = counts.get(shared, 0) + 1
                section["ids"] = [f"{shared}-{counts[shared]}" if i == shared else i for i in section["ids"]]
                section["classes"].append(shared)


def label_completed_workbooks(app, doctree):
    docname = app.env.docname
    if not docname.startswith("solutions/"):
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children or not isinstance(section[0], nodes.title):
        return
    link = addnodes.pending_xref("", nodes.inline("", "its exercises page"), refdomain="std", reftype="doc",
                                 reftarget="/exercises/" + docname.split("/", 1)[1], refexplicit=True,
                                 refwarn=True)
    section.insert(1, nodes.note("", nodes.paragraph(
        "", "", nodes.strong("", "Completed workbook."),
        nodes.Text(" Every answer is filled in and the hidden tests are shown. The student version, with stubs "
                   "in place of the answers, is on "), link,
        nodes.Text("; nbgrader generates the same from this notebook."))))


# myst-nb adds these scripts to pages whose notebooks hold widget state; by default it
# takes them from CDNs. Paths are relative to _static.
WIDGET_SCRIPTS = {
    "vendor/require.js": {},
    "widgets-offline.js": {},
    "vendor/html-manager/embed-amd.js": {},
}


ASSETS = Path(__file__).resolve().parent.parent / "_assets"


def serve_scripts_locally(app, config):
    config.html_static_path = list(config.html_static_path) + [str(ASSETS)]
    config.nb_ipywidgets_js = dict(WIDGET_SCRIPTS)
    config.mathjax_path = "vendor/mathjax/tex-svg.js"


def executed_notebook_button(app, pagename, templatename, context, doctree):
    """Publish this page's executed notebook and link it from the download menu."""
    try:
        source = Path(app.env.doc2path(pagename))
    except Exception:  # generated pages (search, genindex) have no source
        return
    if source.suffix != ".ipynb" or not source.exists():
        return
    import nbformat
    from jupyter_cache import get_cache

    cache_path = app.config.nb_execution_cache_path or str(Path(app.outdir).parent / ".jupyter_cache")
    try:
        _, notebook = get_cache(cache_path).merge_match_into_notebook(nbformat.read(source, as_version=4))
    except KeyError:  # not executed (execution off): nothing to publish
        return
    target = Path(app.outdir) / "_executed" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].insert(1, {
                "type": "link",
                "url": context["pathto"](f"_executed/{pagename}.ipynb", 1),
                "text": ".ipynb (with outputs)",
                "tooltip": "Download the notebook as the book ran it, with its outputs",
                "icon": "fas fa-file-code",
                "label": "download-executed-notebook-button",
            })


def setup(app):
    # After sphinx-book-theme has built the header buttons (priority 501).
    app.connect("html-page-context", executed_notebook_button, priority=600)
    app.connect("config-inited", serve_scripts_locally)
    # Late, after myst-nb has added a page's widget scripts.
    app.connect("html-page-context", tidy_page_scripts, priority=900)
    app.connect("doctree-resolved", unique_exercise_ids)
    app.connect("doctree-read", label_completed_workbooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
