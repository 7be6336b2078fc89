/* Junction's pages work without script. This only moves keyboard focus, as the GOV.UK
   error summary does: to the summary when a form comes back with problems, and from a
   problem in the summary to the control it names. */
(function () {
  "use strict";
  var summary = document.querySelector(".error-summary[role=alert]");
  if (!summary) {
    return;
  }
  var CONTROLS = "input:not([type=hidden]), select, textarea, button";

  function controlFor(target) {
    if (target.matches(CONTROLS)) {
      return target;
    }
    var group = target.closest("fieldset");
    return (group || target).querySelector(CONTROLS);
  }

  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    var target = link && document.getElementById(link.getAttribute("href").slice(1));
    var control = target && controlFor(target);
    if (!control) {
      return;
    }
    event.preventDefault();
    // The question (legend or label) above the control stays in view with it.
    var group = control.closest("fieldset");
    var legend = group && group.querySelector("legend");
    var label = control.id && document.querySelector("label[for='" + control.id + "']");
    (legend || label || control).scrollIntoView();
    control.focus({ preventScroll: true });
  });
  summary.focus();
})();
