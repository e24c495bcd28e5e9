// Certificate checks and the TLS handshake diagnosis (see tls.h), with OpenSSL, which gRPC
// uses too.
#include "rpc/tls.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace boa::rpc {

namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL, SSL_free>>;

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : "error " + std::to_string(e);
}

std::string Time(const ASN1_TIME* t) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), t);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// The names a certificate is for: its DNS and IP subject alternative names, else its CN.
std::string Names(X509* cert) {
  std::string names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
    std::string n;
    if (g->type == GEN_DNS) {
      n.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)), ASN1_STRING_length(g->d.dNSName));
    } else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4) {
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, ASN1_STRING_get0_data(g->d.iPAddress), text, sizeof text);
      n = text;
    } else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 16) {
      char text[INET6_ADDRSTRLEN];
      inet_ntop(AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), text, sizeof text);
      n = text;
    }
    if (!n.empty()) names += (names.empty() ? "" : ", ") + n;
  }
  GENERAL_NAMES_free(sans);
  if (names.empty()) {
    char cn[256] = {0};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    names = cn;
  }
  return names;
}

std::string Subject(X509_NAME* name) {
  char text[512] = {0};
  X509_NAME_oneline(name, text, sizeof text);
  return text;
}

Result<X509Ptr> ReadCertificate(const std::string& path, const std::string& what) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return Status::NotFound(what + " " + path + ": cannot be read: " + std::strerror(errno));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!cert) return Status::InvalidArgument(what + " " + path + ": not a PEM certificate");
  return cert;
}

// HOST and PORT of "HOST:PORT" or "[V6]:PORT"; false for other gRPC targets.
bool SplitHostPort(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || address.find('/') != std::string::npos) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  if (host->find(':') != std::string::npos && address.front() != '[') return false;  // ipv4:..., unix:...
  return !host->empty() && !port->empty();
}

int ConnectTcp(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &list) != 0) return -1;
  int fd = -1;
  for (addrinfo* ai = list; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(list);
  return fd;
}

}  // namespace

TlsOptions TlsOptions::WithEnvironment() const {
  TlsOptions t = *this;
  const auto env = [](std::string* field, const char* name) {
    const char* v = std::getenv(name);
    if (field->empty() && v != nullptr) *field = v;
  };
  env(&t.ca, "BOA_TLS_CA");
  env(&t.cert, "BOA_TLS_CERT");
  env(&t.key, "BOA_TLS_KEY");
  env(&t.server_name, "BOA_TLS_SERVER_NAME");
  t.enabled = t.enabled || !t.ca.empty() || !t.cert.empty() || !t.key.empty() || !t.server_name.empty();
  return t;
}

Status CheckCertificateFiles(const CertificateFiles& f) {
  BOA_ASSIGN_OR_RETURN(X509Ptr cert, ReadCertificate(f.cert, f.cert_name));
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
    return Status::FailedPrecondition(f.cert_name + " " + f.cert + ": the certificate expired on " +
                                      Time(X509_get0_notAfter(cert.get())));
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0) {
    return Status::FailedPrecondition(f.cert_name + " " + f.cert + ": the certificate is not valid before " +
                                      Time(X509_get0_notBefore(cert.get())));
  }
  if (!f.key.empty()) {
    BioPtr bio(BIO_new_file(f.key.c_str(), "r"));
    if (!bio) return Status::NotFound(f.key_name + " " + f.key + ": cannot be read: " + std::strerror(errno));
    KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    ERR_clear_error();
    if (!key) return Status::InvalidArgument(f.key_name + " " + f.key + ": not a PEM private key (or one with a passphrase)");
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
      ERR_clear_error();
      return Status::InvalidArgument(f.key_name + " " + f.key + ": not the key of the certificate in " + f.cert_name +
                                     " " + f.cert);
    }
  }
  if (!f.ca.empty()) BOA_RETURN_IF_ERROR(ReadCertificate(f.ca, f.ca_name).status());
  return Status::Ok();
}

Status DiagnoseTls(const std::string& address, const TlsOptions& tls) {
  std::string host, port;
  if (!SplitHostPort(address, &host, &port)) return Status::Ok();
  const std::string name = tls.server_name.empty() ? host : tls.server_name;
  const auto fail = [&](const std::string& why) { return Status::Unavailable("TLS to boad at " + address + ": " + why); };
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return Status::Ok();
  if (!tls.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), tls.ca.c_str(), nullptr) != 1) {
      return fail("--tls-ca " + tls.ca + ": " + OpenSslError());
    }
  } else {
    SSL_CTX_set_default_verify_paths(ctx.get());
  }
  if (!tls.cert.empty() || !tls.key.empty()) {
    if (tls.cert.empty() || tls.key.empty()) return fail("--tls-cert and --tls-key go together");
    BOA_RETURN_IF_ERROR(CheckCertificateFiles({tls.cert, tls.key, "", "--tls-cert", "--tls-key", ""}));
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return fail("--tls-cert " + tls.cert + ": " + OpenSslError());
    }
  }
  // The handshake goes on whatever the certificate; its verdict is read after.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  const int fd = ConnectTcp(host, port);
  if (fd < 0) return Status::Ok();  // not a TLS problem: the caller's message stands
  SslPtr ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof kAlpn);
  in6_addr ip{};
  const bool is_ip = inet_pton(AF_INET, name.c_str(), &ip) == 1 || inet_pton(AF_INET6, name.c_str(), &ip) == 1;
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), name.c_str());
    SSL_set1_host(ssl.get(), name.c_str());
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  if (SSL_connect(ssl.get()) != 1) {
    const unsigned long e = ERR_peek_last_error();
    const std::string reason = OpenSslError();
    if (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER || ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG ||
        ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING || e == 0) {
      return fail("boad does not answer TLS there (a plaintext port? then leave out the TLS options)");
    }
    return fail("the handshake failed: " + reason);
  }
  X509Ptr peer(SSL_get1_peer_certificate(ssl.get()));
  if (!peer) return fail("boad sent no certificate");
  const long verdict = SSL_get_verify_result(ssl.get());
  const std::string from_ca = tls.ca.empty() ? "the system's CA certificates" : "--tls-ca " + tls.ca;
  switch (verdict) {
    case X509_V_OK:
      break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return fail("boad's certificate expired on " + Time(X509_get0_notAfter(peer.get())));
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return fail("boad's certificate is not valid before " + Time(X509_get0_notBefore(peer.get())));
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return fail("boad's certificate is for " + Names(peer.get()) + ", not " + name +
                  " (connect by one of those names, or give --tls-server-name)");
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return fail("boad's certificate (issued by " + Subject(X509_get_issuer_name(peer.get())) +
                  ") is not signed by a CA in " + from_ca);
    default:
      return fail(std::string("boad's certificate is not accepted: ") + X509_verify_cert_error_string(verdict));
  }
  // With TLS 1.3 boad judges the client's certificate after the client's side of the
  // handshake is done: its refusal comes as an alert on the first read.
  char byte;
  if (SSL_peek(ssl.get(), &byte, 1) <= 0) {
    const unsigned long e = ERR_peek_last_error();
    if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL) {
      const std::string reason = OpenSslError();
      if (tls.cert.empty()) return fail("boad requires a client certificate (--tls-cert and --tls-key): " + reason);
      return fail("boad refused the client certificate --tls-cert " + tls.cert + ": " + reason);
    }
  }
  return Status::Ok();
}

}  // namespace boa::rpc
