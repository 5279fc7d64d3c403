// Progressive enhancement only: the pages work without it. A form marked data-wait shows
// its waiting text and cannot be sent twice while the counter works (the idempotency key
// makes a second send harmless anyway).
document.querySelectorAll("form[data-wait]").forEach((form) => {
  form.addEventListener("submit", () => {
    const button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; button.textContent = form.dataset.wait; }
    form.setAttribute("aria-busy", "true");
  });
});
