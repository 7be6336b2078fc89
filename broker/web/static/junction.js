/* Junction's pages work without script. This only moves keyboard focus: as the GOV.UK
   error summary does, to the summary when a form comes back with problems, and from a
   problem in the summary to the control it names; and it takes a table's box out of the
   Tab order while the table fits, so Tab stops only where there is something to scroll. */
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

(function () {
  "use strict";
  // Each box is focusable in the page as sent (tabindex="0"), so without script a
  // keyboard can still scroll every one.
  var boxes = document.querySelectorAll(".table-scroll[tabindex='0']");
  if (!boxes.length || !window.ResizeObserver) {
    return;
  }

  function check(box) {
    if (box.scrollWidth > box.clientWidth) {
      box.setAttribute("tabindex", "0");
    } else {
      box.removeAttribute("tabindex");
    }
  }

  // A box changes width with the window (or zoom), and a table with what it shows, such as
  // one in a "details" opened.
  var observer = new ResizeObserver(function (changes) {
    changes.forEach(function (change) {
      check(change.target.closest(".table-scroll"));
    });
  });
  Array.prototype.forEach.call(boxes, function (box) {
    check(box);
    observer.observe(box);
    if (box.firstElementChild) {
      observer.observe(box.firstElementChild);
    }
  });
})();
