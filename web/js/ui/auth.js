// Log in / sign up dialog and the header's user area.

import { h, showError } from "./dom.js";

export function mountAuth({ userArea, dialog }, { http, session, toast }) {
  const form = dialog.querySelector("form");
  const email = form.elements.email;
  const password = form.elements.password;
  const title = dialog.querySelector(".dialog-title");
  const submit = form.querySelector("button[type=submit]");
  const switchLink = dialog.querySelector(".auth-switch");
  const err = dialog.querySelector(".form-error");
  let mode = "login";

  const setMode = (m) => {
    mode = m;
    title.textContent = m === "login" ? "Log in" : "Create account";
    submit.textContent = m === "login" ? "Log in" : "Sign up";
    switchLink.textContent = m === "login" ? "No account? Sign up" : "Have an account? Log in";
    password.autocomplete = m === "login" ? "current-password" : "new-password";
    showError(err, null);
  };

  const open = (m) => {
    setMode(m);
    if (!dialog.open) dialog.showModal();
    email.focus();
  };

  switchLink.addEventListener("click", (e) => {
    e.preventDefault();
    setMode(mode === "login" ? "signup" : "login");
  });
  dialog.querySelector(".dialog-close").addEventListener("click", () => dialog.close());

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(err, null);
    const em = email.value.trim();
    const pw = password.value;
    if (!em || !pw) return showError(err, "Enter e-mail and password");
    submit.disabled = true;
    try {
      if (mode === "signup") {
        await http.signup(em, pw);
        toast("Account created", "success");
      }
      const login = await http.login(em, pw);
      if (!login || !login.access_token) throw new Error("Login response without access_token");
      session.start(em, login);
      password.value = "";
      dialog.close();
    } catch (ex) {
      showError(err, ex);
    } finally {
      submit.disabled = false;
    }
  });

  const render = () => {
    if (session.loggedIn) {
      userArea.replaceChildren(
        h("span.user-email", { title: "Signed in" }, session.email),
        h("button.btn.btn-ghost", { type: "button", onclick: () => session.end() }, "Log out"),
      );
    } else {
      userArea.replaceChildren(
        h("button.btn.btn-ghost", { type: "button", onclick: () => open("login") }, "Log in"),
        h("button.btn.btn-primary", { type: "button", onclick: () => open("signup") }, "Sign up"),
      );
    }
  };

  session.onChange((loggedIn, reason) => {
    render();
    if (!loggedIn && reason) {
      toast(reason, "warn", { title: "Signed out" });
      open("login");
    }
  });
  render();
  return { open };
}
