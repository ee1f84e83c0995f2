/* Behaviour shared by every page, kept out of the markup: the Content-Security-Policy allows no inline handlers. */
"use strict";

// A <select data-autosubmit> (tenant, language) submits its form as soon as a choice is made.
document.addEventListener("change", (event) => {
  const target = event.target;
  if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
    target.form.submit();
  }
});
