// Preselect the browser's time zone on the sign-up form, unless one was chosen already.
(function () {
  "use strict";
  var select = document.getElementById("timezone");
  if (!select || select.getAttribute("data-auto") !== "yes") { return; }
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone) { return; }
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) { select.selectedIndex = i; return; }
  }
})();
