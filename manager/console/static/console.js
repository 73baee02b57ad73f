// The console's only script; every page works without it. It asks before a destructive form is sent, and copies
// a token shown once.
"use strict";
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = button && button.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const value = document.getElementById(button.dataset.copy);
  if (value && navigator.clipboard) {
    navigator.clipboard.writeText(value.textContent.trim()).then(() => { button.textContent = "Copied"; });
  }
});
