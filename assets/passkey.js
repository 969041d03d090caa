// Tessera's passkey ceremonies: a form with data-passkey="register" or "sign-in" asks its
// data-options URL for WebAuthn options (posting the form's own fields: CSRF token, and the
// authorization request on the login page), runs navigator.credentials.create() or .get(),
// and posts the answer in the form's "credential" field. Served from Tessera itself: the
// pages' CSP allows scripts from 'self' only, none inline.
"use strict";
(function () {
  function toBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) {
      raw += String.fromCharCode(bytes[i]);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The server's JSON may hold nulls for absent members; WebAuthn's dictionaries want them gone.
  function clean(value) {
    if (Array.isArray(value)) {
      return value.map(clean);
    }
    if (value && typeof value === "object") {
      var out = {};
      Object.keys(value).forEach(function (key) {
        if (value[key] !== null && value[key] !== undefined) {
          out[key] = clean(value[key]);
        }
      });
      return out;
    }
    return value;
  }

  function fail(form, message) {
    var box = form.querySelector("#passkey-error");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
    var button = form.querySelector("button[type=submit]");
    if (button) {
      button.disabled = false;
    }
  }

  async function options(form) {
    var response = await fetch(form.dataset.options, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    var body = await response.json().catch(function () {
      return {};
    });
    if (!response.ok) {
      throw new Error(body.error_description || "Passkeys are unavailable just now.");
    }
    return body;
  }

  // What the server takes back: the ceremony's id and the credential, its binary parts as
  // base64url, with the ceremony's own `response` members.
  function answerOf(body, credential, response) {
    return {
      ceremony: body.ceremony,
      answer: {
        id: credential.id,
        rawId: toText(credential.rawId),
        type: credential.type,
        extensions: credential.getClientExtensionResults(),
        response: response,
      },
    };
  }

  async function register(form) {
    var body = await options(form);
    var publicKey = clean(body.publicKey);
    publicKey.challenge = toBytes(publicKey.challenge);
    publicKey.user.id = toBytes(publicKey.user.id);
    (publicKey.excludeCredentials || []).forEach(function (c) {
      c.id = toBytes(c.id);
    });
    var credential = await navigator.credentials.create({ publicKey: publicKey });
    var r = credential.response;
    return answerOf(body, credential, {
      attestationObject: toText(r.attestationObject),
      clientDataJSON: toText(r.clientDataJSON),
      transports: r.getTransports ? r.getTransports() : [],
    });
  }

  async function signIn(form) {
    var body = await options(form);
    var publicKey = clean(body.publicKey);
    publicKey.challenge = toBytes(publicKey.challenge);
    (publicKey.allowCredentials || []).forEach(function (c) {
      c.id = toBytes(c.id);
    });
    var credential = await navigator.credentials.get({ publicKey: publicKey });
    var r = credential.response;
    return answerOf(body, credential, {
      authenticatorData: toText(r.authenticatorData),
      clientDataJSON: toText(r.clientDataJSON),
      signature: toText(r.signature),
      userHandle: r.userHandle ? toText(r.userHandle) : null,
    });
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!window.PublicKeyCredential) {
        fail(form, "This browser does not support passkeys.");
        return;
      }
      var button = form.querySelector("button[type=submit]");
      if (button) {
        button.disabled = true;
      }
      var ceremony = form.dataset.passkey === "register" ? register : signIn;
      ceremony(form).then(
        function (done) {
          form.elements.ceremony.value = done.ceremony;
          form.elements.credential.value = JSON.stringify(done.answer);
          form.submit();
        },
        function (error) {
          var message =
            error && error.name === "NotAllowedError"
              ? "The passkey request was cancelled or timed out."
              : (error && error.message) || "The passkey did not work.";
          fail(form, message);
        }
      );
    });
  });

  // A seam for the tests (and nothing else): the form's ceremony, options fetched and the
  // authenticator asked, without posting the answer. A Promise of {ceremony, answer}.
  window.tesseraPasskey = {
    answer: function (form) {
      return (form.dataset.passkey === "register" ? register : signIn)(form);
    },
  };
})();
