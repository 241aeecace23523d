// Package controllers will hold one folder per reconciled kind
// (CertificateAuthority, AcmeProfile, AcmeAccount) once the Kubernetes store
// lands; the ACME server already stores and reads the api/v1alpha1 objects
// through the storage seam those controllers and the CR backend will share.
package controllers
